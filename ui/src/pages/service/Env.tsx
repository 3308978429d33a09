// /services/NAME/env: the service's variables. Values are secrets: the table shows names and
// dots until "Reveal" asks the server for them. Every change is one PATCH {set, unset}, which
// returns once the new instances serve the new environment; until then the status says
// "Applying…", so the person knows the change is not in effect yet.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, errorText, type Schemas } from "../../api/client";
import { ENV_NAME, ENV_NAME_RULE, parseDotenv, type Dotenv } from "./dotenv";
import { Missing } from "./Missing";
import type { TabProps } from "./tabs";
import "./observe.css";

type EnvApplied = Schemas["EnvApplied"];

/** The most bytes (names and values) a service's environment holds (`ENV_TOTAL_LIMIT`). */
const ENV_TOTAL_LIMIT = 3072;
type EnvChange = Schemas["EnvChange"];

type Progress =
  | { kind: "idle" }
  | { kind: "applying"; what: string }
  | { kind: "done"; applied: EnvApplied }
  | { kind: "failed"; error: string };

/** Where a change came from, so its error shows next to it. */
type Origin = "form" | "import" | "row";

interface Vars {
  names: string[];
  /** Present once revealed. */
  values: Record<string, string> | null;
}

/** The request field an API error names (ApiErrorBody.field), when it names one. */
function fieldOf(e: unknown): string | undefined {
  return e && typeof e === "object" && "field" in e && typeof e.field === "string" ? e.field : undefined;
}

function progressText(p: Progress): string {
  switch (p.kind) {
    case "idle":
      return "";
    case "applying":
      return "Applying…";
    case "done":
      return p.applied.changed ? `Applied: ${p.applied.replaced} instance(s) replaced` : "No change";
    case "failed":
      return `Not applied: ${p.error}`;
  }
}

export function Env({ name }: TabProps) {
  const [vars, setVars] = useState<Vars | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [missing, setMissing] = useState(false);
  const [revealed, setRevealed] = useState(false);
  const [progress, setProgress] = useState<Progress>({ kind: "idle" });
  const [errorAt, setErrorAt] = useState<{ origin: Origin; error: string; field?: string } | null>(null);

  const [formName, setFormName] = useState("");
  const [formValue, setFormValue] = useState("");
  const [editing, setEditing] = useState<string | null>(null);
  const [formProblem, setFormProblem] = useState<{ name?: string; value?: string }>({});
  const valueInput = useRef<HTMLTextAreaElement>(null);
  const nameInput = useRef<HTMLInputElement>(null);

  const [imported, setImported] = useState<(Dotenv & { file: string }) | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const load = async (reveal: boolean) => {
    const { data, error, response } = await api.GET("/v1/services/{name}/env", {
      params: { path: { name }, query: reveal ? { reveal: true } : {} },
    });
    if (data) {
      setVars({ names: data.names, values: reveal ? (data.values ?? {}) : null });
      setLoadError(null);
    } else {
      setMissing(response.status === 404);
      setLoadError(errorText(error));
    }
  };
  useEffect(() => {
    setVars(null);
    load(false);
  }, [name]);

  const applying = progress.kind === "applying";

  const send = async (change: EnvChange, origin: Origin, what: string): Promise<boolean> => {
    setProgress({ kind: "applying", what });
    setErrorAt(null);
    const { data, error } = await api.PATCH("/v1/services/{name}/env", {
      params: { path: { name } },
      body: change,
    });
    if (!data) {
      const text = errorText(error);
      setProgress({ kind: "failed", error: text });
      setErrorAt({ origin, error: text, field: fieldOf(error) });
      return false;
    }
    setProgress({ kind: "done", applied: data });
    await load(revealed);
    return true;
  };

  const save = async (e: Event) => {
    e.preventDefault();
    const n = formName.trim();
    const problem: { name?: string; value?: string } = {};
    if (!n) problem.name = "Give the variable a name.";
    else if (!ENV_NAME.test(n)) problem.name = ENV_NAME_RULE;
    if (formValue.includes("\0")) problem.value = "A value cannot hold a NUL byte.";
    // The server's cap is on all variables together (it says so when they are over it); one
    // variable over it alone can be told here.
    else if (new TextEncoder().encode(n + formValue).length > ENV_TOTAL_LIMIT)
      problem.value = `Too long: a service's variables hold at most ${ENV_TOTAL_LIMIT} bytes (3 KB) in all.`;
    setFormProblem(problem);
    if (problem.name) return nameInput.current?.focus();
    if (problem.value) return valueInput.current?.focus();
    const ok = await send({ set: { [n]: formValue } }, "form", `setting ${n}`);
    if (ok) {
      setFormName("");
      setFormValue("");
      setEditing(null);
    }
  };

  const edit = (n: string) => {
    setEditing(n);
    setFormName(n);
    setFormValue(vars?.values?.[n] ?? "");
    setFormProblem({});
    valueInput.current?.focus();
  };

  const remove = (n: string) => send({ unset: [n] }, "row", `removing ${n}`);

  const toggleReveal = async () => {
    if (revealed) {
      setRevealed(false);
      setVars((v) => (v ? { ...v, values: null } : v));
    } else {
      setRevealed(true);
      await load(true);
    }
  };

  const pickFile = async (e: Event) => {
    const input = e.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    setErrorAt(null);
    if (!file) return setImported(null);
    const text = await file.text();
    setImported({ ...parseDotenv(text), file: file.name });
  };
  const cancelImport = () => {
    setImported(null);
    if (fileInput.current) fileInput.current.value = "";
  };
  const sendImport = async () => {
    if (!imported || imported.errors.length > 0 || imported.entries.length === 0) return;
    const set = Object.fromEntries(imported.entries.map((v) => [v.name, v.value]));
    const count = imported.entries.length;
    if (await send({ set }, "import", `setting ${count} variable${count === 1 ? "" : "s"}`)) cancelImport();
  };

  const formError = errorAt?.origin === "form" ? errorAt : null;
  // The API's error goes with the field it names; an env error is about the name or value.
  const formErrorOnValue = formError && formError.field === "value";
  const nameErrors = [formProblem.name, formError && !formErrorOnValue ? formError.error : undefined].filter(Boolean);
  const valueErrors = [formProblem.value, formErrorOnValue ? formError.error : undefined].filter(Boolean);

  if (missing) return <Missing name={name} />;
  return (
    <section aria-label="Environment" class="env-tab">
      <div class="env-head">
        <h2>Environment variables</h2>
        <button type="button" onClick={toggleReveal} disabled={!vars || vars.names.length === 0}>
          {revealed ? "Hide" : "Reveal"}
        </button>
      </div>
      <p class="hint">
        Variables reach the service's instances as their environment. A change starts new instances with it, then
        stops the old ones: nothing is rebuilt.
      </p>
      <p role="status" class={`env-status p-${progress.kind}`}>
        {progressText(progress)}
      </p>
      {applying ? (
        <p class="hint" aria-hidden="true">
          <span class="spinner" /> {progress.what}: starting instances with the new environment…
        </p>
      ) : null}
      {errorAt?.origin === "row" ? (
        <p role="alert" class="banner error">
          {errorAt.error}
        </p>
      ) : null}

      {loadError ? (
        <p role="alert" class="banner error">
          Cannot read the variables: {loadError}
        </p>
      ) : !vars ? (
        <p class="loading" aria-busy="true">
          Loading variables…
        </p>
      ) : vars.names.length === 0 ? (
        <p class="empty">No variables yet. Add one below, or import a .env file.</p>
      ) : (
        <div class="table-wrap">
          <table class="env-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Value</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {vars.names.map((n) => (
                <tr key={n} class={editing === n ? "editing" : undefined}>
                  <th scope="row">
                    <code>{n}</code>
                  </th>
                  <td class="env-value">
                    {vars.values ? (
                      <code>{vars.values[n] ?? ""}</code>
                    ) : (
                      <span class="dots" title="Hidden: press Reveal to show">
                        ••••••••
                      </span>
                    )}
                  </td>
                  <td class="row-actions">
                    <button type="button" onClick={() => edit(n)} disabled={applying}>
                      Edit
                    </button>
                    <button type="button" class="danger" onClick={() => remove(n)} disabled={applying}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <form class="card env-form" aria-label="Add variable" onSubmit={save} noValidate>
        <h3>{editing ? `Change ${editing}` : "Add variable"}</h3>
        <div class="field">
          <label for="env-name">Name</label>
          <input
            id="env-name"
            ref={nameInput}
            name="name"
            value={formName}
            autocomplete="off"
            spellcheck={false}
            placeholder="DATABASE_URL"
            aria-invalid={nameErrors.length ? "true" : undefined}
            aria-describedby={nameErrors.length ? "env-name-error" : undefined}
            onInput={(e) => setFormName(e.currentTarget.value)}
          />
          {nameErrors.length ? (
            <span id="env-name-error" class="field-error">
              {nameErrors.join(" ")}
            </span>
          ) : null}
        </div>
        <div class="field grow">
          <label for="env-value">Value</label>
          <textarea
            id="env-value"
            ref={valueInput}
            name="value"
            rows={1}
            value={formValue}
            autocomplete="off"
            spellcheck={false}
            placeholder={editing && !vars?.values ? "the new value" : ""}
            aria-invalid={valueErrors.length ? "true" : undefined}
            aria-describedby={valueErrors.length ? "env-value-error" : undefined}
            onInput={(e) => setFormValue(e.currentTarget.value)}
            onKeyDown={(e) => {
              // Enter saves, as in a one-line field; Shift+Enter starts a new line of the value.
              if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                e.currentTarget.form?.requestSubmit();
              }
            }}
          />
          {valueErrors.length ? (
            <span id="env-value-error" class="field-error">
              {valueErrors.join(" ")}
            </span>
          ) : null}
        </div>
        <div class="form-actions">
          <button type="submit" class="primary" disabled={applying}>
            Save
          </button>
          {editing ? (
            <button
              type="button"
              onClick={() => {
                setEditing(null);
                setFormName("");
                setFormValue("");
                setFormProblem({});
              }}
            >
              Cancel
            </button>
          ) : null}
        </div>
      </form>

      <div class="card env-import">
        <h3>Import</h3>
        <div class="field">
          <label for="env-file">Import .env file</label>
          <input id="env-file" ref={fileInput} type="file" accept=".env,text/plain,*" onChange={pickFile} />
        </div>
        {imported ? (
          <ImportPreview
            imported={imported}
            existing={vars?.names ?? []}
            applying={applying}
            error={errorAt?.origin === "import" ? errorAt.error : null}
            onSend={sendImport}
            onCancel={cancelImport}
          />
        ) : (
          <p class="hint">KEY=VALUE lines; comments, quotes and `export` are understood. Nothing is sent before you confirm.</p>
        )}
      </div>
    </section>
  );
}

function ImportPreview(props: {
  imported: Dotenv & { file: string };
  existing: string[];
  applying: boolean;
  error: string | null;
  onSend: () => void;
  onCancel: () => void;
}) {
  const { imported, existing, applying, error } = props;
  const { entries, errors } = imported;
  const n = entries.length;
  return (
    <div class="import-preview">
      {errors.length > 0 ? (
        <div role="alert" class="banner error">
          <p>
            {imported.file} has {errors.length} line{errors.length === 1 ? "" : "s"} that cannot be read; fix{" "}
            {errors.length === 1 ? "it" : "them"} and pick the file again:
          </p>
          <ul>
            {errors.map((e) => (
              <li>
                Line {e.line}: {e.error}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {n === 0 ? (
        <p class="empty">No variable in {imported.file}.</p>
      ) : (
        <>
          <p>
            {imported.file}: {n} variable{n === 1 ? "" : "s"} to set
          </p>
          <div class="table-wrap">
            <table class="env-table">
              <thead>
                <tr>
                  <th scope="col">Line</th>
                  <th scope="col">Name</th>
                  <th scope="col">Change</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((v) => (
                  <tr>
                    <td>{v.line}</td>
                    <th scope="row">
                      <code>{v.name}</code>
                    </th>
                    <td>
                      {existing.includes(v.name) ? "replaced" : "added"} · {v.value.length} character
                      {v.value.length === 1 ? "" : "s"}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {error ? (
        <p role="alert" class="banner error">
          {error}
        </p>
      ) : null}
      <div class="form-actions">
        <button type="button" class="primary" disabled={applying || errors.length > 0 || n === 0} onClick={props.onSend}>
          Set {n} variable{n === 1 ? "" : "s"}
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}
