// `/new`, Manual Deploy: everything `hoist deploy` takes, checked before it is sent; the API's
// own error lands next to the field it names. On success, the deployment's page, where its
// build log streams.
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, ApiFailure, errorText, must, type Schemas } from "../api/client";
import { Field, type Errors } from "../components/Field";
import { MemorySelect } from "../components/MemorySelect";
import { ScalingFields } from "../components/ScalingFields";
import { usePoll } from "../components/usePoll";
import { emptyScaling, envLines, nameError, portError, scalingValues, type ScalingText } from "../components/validate";

type DeployRequest = Schemas["DeployRequest"];
type Runtime = Schemas["Runtime"];

interface Form {
  source: string;
  name: string;
  branch: string;
  root: string;
  runtime: string;
  build: string;
  start: string;
  port: string;
  env: string;
}

const empty: Form = { source: "", name: "", branch: "", root: "", runtime: "", build: "", start: "", port: "", env: "" };

/** Fields the API names in a 400 that this form has; any other goes above the button. */
const FIELDS = new Set([...Object.keys(empty), "memory", ...Object.keys(emptyScaling)]);

export function NewDeploy() {
  const { route } = useLocation();
  const [form, setForm] = useState<Form>(empty);
  const [scaling, setScaling] = useState<ScalingText>(emptyScaling);
  const [memory, setMemory] = useState<number | null>(null);
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const server = usePoll(() => must(api.GET("/v1/server")), 0, []);
  const runtimes = usePoll(() => must(api.GET("/v1/runtimes")), 0, []);

  const text = (k: keyof Form) => (e: { currentTarget: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement }) =>
    setForm({ ...form, [k]: e.currentTarget.value });

  /** The request, or null with `errors` set. */
  const request = (): DeployRequest | null => {
    const errs: Errors = {};
    if (!form.source.trim()) errs.source = "A git URL, or the absolute path of a directory on the server.";
    const nameErr = nameError(form.name.trim());
    if (nameErr) errs.name = nameErr;
    const portErr = portError(form.port);
    if (portErr) errs.port = portErr;
    const env = envLines(form.env);
    if (env.error) errs.env = env.error;
    const scale = scalingValues(scaling, errs);
    setErrors(errs);
    if (Object.keys(errs).length) return null;
    const opt = (v: string) => (v.trim() ? v.trim() : undefined);
    return {
      source: form.source.trim(),
      name: opt(form.name),
      branch: opt(form.branch),
      root: opt(form.root),
      runtime: form.runtime ? (form.runtime as Runtime) : undefined,
      // A build command may span lines; only its outer blank lines go.
      build: form.build.trim() ? form.build.replace(/^\s*\n|\n\s*$/g, "") : undefined,
      start: opt(form.start),
      port: form.port.trim() ? Number(form.port) : undefined,
      memory: memory != null ? `${memory}mb` : undefined,
      env: env.lines,
      ...scale,
    };
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const body = request();
    if (!body) {
      focusFirstError();
      return;
    }
    setBusy(true);
    try {
      const d = await must(api.POST("/v1/deployments", { body }));
      route(`/services/${encodeURIComponent(d.service)}/deployments?deployment=${encodeURIComponent(d.id)}`);
    } catch (err) {
      const field = err instanceof ApiFailure ? err.field : null;
      setErrors(field && FIELDS.has(field) ? { [field]: errorText(err) } : { _: errorText(err) });
      setBusy(false);
      focusFirstError();
    }
  };

  const runtimeOptions = runtimes.data ?? [];
  return (
    <section aria-labelledby="new-h" aria-busy={server.loading || runtimes.loading ? "true" : undefined}>
      <div class="page-head">
        <h1 id="new-h">Manual Deploy</h1>
      </div>
      <form class="card form" onSubmit={submit} noValidate>
        <fieldset class="grid">
          <legend>Code</legend>
          <Field
            name="source"
            label="Source"
            class="wide"
            error={errors.source}
            hint="A git URL (https://…, git@…) or the absolute path of a git repository on the server."
          >
            {(p) => <input {...p} type="text" required spellcheck={false} value={form.source} onInput={text("source")} />}
          </Field>
          <Field name="name" label="Service name" error={errors.name} hint="Lowercase letters, digits and '-'. Taken from the source when empty.">
            {(p) => <input {...p} type="text" spellcheck={false} autoComplete="off" value={form.name} onInput={text("name")} />}
          </Field>
          <Field name="branch" label="Branch" error={errors.branch} hint="The repository's default branch when empty.">
            {(p) => <input {...p} type="text" spellcheck={false} value={form.branch} onInput={text("branch")} />}
          </Field>
          <Field name="root" label="Root directory" error={errors.root} hint="The app's directory in the repository (monorepos).">
            {(p) => <input {...p} type="text" spellcheck={false} placeholder="/" value={form.root} onInput={text("root")} />}
          </Field>
        </fieldset>
        <fieldset class="grid">
          <legend>Build and run</legend>
          <Field
            name="runtime"
            label="Runtime"
            error={errors.runtime ?? (runtimes.error ? `Could not list the runtimes: ${errorText(runtimes.error)}` : null)}
            hint="Detect: from the repository's files (requirements.txt, package.json, go.mod, Cargo.toml)."
          >
            {(p) => (
              <select {...p} value={form.runtime} onChange={text("runtime")}>
                <option value="">Detect</option>
                {runtimeOptions.map((r) => (
                  <option key={r.name} value={r.name}>
                    {r.name}
                    {r.version ? ` ${r.version}` : ""}
                    {r.installed ? "" : " (built on first use)"}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field name="port" label="Port" error={errors.port} hint="The port the app listens on; it is also in $PORT.">
            {(p) => (
              <input {...p} type="number" inputMode="numeric" min={1} max={65535} placeholder="8080" value={form.port} onInput={text("port")} />
            )}
          </Field>
          <MemorySelect
            server={server.data}
            value={memory}
            onChange={setMemory}
            hint={
              memory == null
                ? "Unless you pick one, the repository's hoist.toml decides (else the server's default). CPU follows memory: one vCPU at 1769 MB."
                : "CPU follows memory: one full vCPU at 1769 MB."
            }
            error={errors.memory ?? (server.error ? `Could not read the server's memory sizes: ${errorText(server.error)}` : null)}
          />
          <Field name="build" label="Build command" class="wide" error={errors.build} hint="Runs in the app's directory; several lines run in order.">
            {(p) => <textarea {...p} rows={3} spellcheck={false} placeholder="pip install -r requirements.txt" value={form.build} onInput={text("build")} />}
          </Field>
          <Field name="start" label="Start command" class="wide" error={errors.start}>
            {(p) => <input {...p} type="text" spellcheck={false} placeholder="gunicorn -b 0.0.0.0:$PORT app:app" value={form.start} onInput={text("start")} />}
          </Field>
          <Field name="env" label="Environment variables" class="wide" error={errors.env} hint="One KEY=VALUE per line; lines starting with # are skipped.">
            {(p) => <textarea {...p} rows={4} spellcheck={false} placeholder={"DATABASE_URL=postgres://…\nDEBUG=0"} value={form.env} onInput={text("env")} />}
          </Field>
        </fieldset>
        <ScalingFields value={scaling} onChange={setScaling} errors={errors} defaults={server.data?.scaling_defaults} />
        {errors._ && (
          <p role="alert" class="banner error">
            {errors._}
          </p>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Deploying…" : "Deploy"}
          </button>
        </div>
      </form>
    </section>
  );
}

/** Moves the focus to the first input that has an error, once the errors are rendered. */
export function focusFirstError() {
  requestAnimationFrame(() => {
    const bad = document.querySelector<HTMLElement>("[aria-invalid='true'], form [role='alert']");
    bad?.focus();
  });
}
