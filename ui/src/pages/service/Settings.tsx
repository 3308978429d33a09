// Scaling and memory, and deleting the service. Scaling applies at once (POST /scale, no
// restart). Memory is part of the built deployment, so changing it redeploys: the newest
// deployment's source built again with the new limit (the page says so before Save).
import { useEffect, useRef, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, ApiFailure, errorText, must, type Schemas } from "../../api/client";
import { Field, type Errors } from "../../components/Field";
import { Loading } from "../../components/Loading";
import { LoadError } from "../../components/LoadError";
import { MemorySelect } from "../../components/MemorySelect";
import { ScalingFields } from "../../components/ScalingFields";
import { formatDuration } from "../../components/format";
import { usePoll } from "../../components/usePoll";
import { emptyScaling, scalingValues, type ScalingText } from "../../components/validate";
import { redeployRequest } from "./Deployments";
import { tabPath, type TabProps } from "./tabs";
import { isNotFound, useService } from "./useService";
import { Missing } from "./Missing";

type Scaling = Schemas["Scaling"];

function asText(s: Scaling): ScalingText {
  return {
    min_instances: String(s.min_instances),
    max_instances: String(s.max_instances),
    concurrency: String(s.concurrency),
    idle_freeze: formatDuration(s.idle_freeze_ms),
    idle_stop: formatDuration(s.idle_stop_ms),
  };
}

const SCALING_FIELDS = new Set(Object.keys(emptyScaling));

export function Settings({ name }: TabProps) {
  // Read once: a refresh must not overwrite what the user is typing.
  const service = useService(name, 0);
  const server = usePoll(() => must(api.GET("/v1/server")), 0, []);
  const { route } = useLocation();
  const [scaling, setScaling] = useState<ScalingText>(emptyScaling);
  const [memory, setMemory] = useState<number | null>(null);
  const [errors, setErrors] = useState<Errors>({});
  const [status, setStatus] = useState<{ busy: boolean; text: string } | null>(null);
  const s = service.data;
  const newest = s?.deployments[0];
  const current = (s?.deployments.find((d) => d.id === s.live_deployment) ?? newest)?.spec?.memory ?? null;

  useEffect(() => {
    if (s) {
      setScaling(asText(s.scaling));
      setMemory(current);
    }
  }, [s]);

  if (isNotFound(service.error)) return <Missing name={name} />;
  if (service.loading && !s) return <Loading what="Loading settings…" />;
  if (!s) return <LoadError error={service.error} what={`load ${name}`} />;

  const memoryChanged = memory != null && memory !== current;
  const save = async (e: Event) => {
    e.preventDefault();
    const errs: Errors = {};
    const body = scalingValues(scaling, errs);
    if (memoryChanged && !newest) errs.memory = "The service has no deployment to redeploy with this memory.";
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setStatus({ busy: true, text: "Saving…" });
    try {
      const applied = await must(api.POST("/v1/services/{name}/scale", { params: { path: { name } }, body }));
      setScaling(asText(applied));
      if (memoryChanged && newest) {
        setStatus({ busy: true, text: "Scaling saved. Redeploying with the new memory…" });
        const d = await must(
          api.POST("/v1/deployments", { body: { ...redeployRequest(name, newest), memory: `${memory}mb` } }),
        );
        route(tabPath(name, "deployments", { deployment: d.id }));
        return;
      }
      setStatus({ busy: false, text: "Saved: the new scaling applies now." });
    } catch (err) {
      const field = err instanceof ApiFailure ? err.field : null;
      if (field && (SCALING_FIELDS.has(field) || field === "memory")) setErrors({ [field]: errorText(err) });
      else setErrors({ _: errorText(err) });
      setStatus(null);
    }
  };

  return (
    <section aria-label="Settings" class="settings">
      <form class="card form" onSubmit={save} noValidate>
        <h2>Scaling and memory</h2>
        <ScalingFields value={scaling} onChange={setScaling} errors={errors} defaults={server.data?.scaling_defaults} />
        <fieldset class="grid">
          <legend>Resources</legend>
          <MemorySelect
            server={server.data}
            value={memory}
            onChange={setMemory}
            error={errors.memory}
            hint={
              memoryChanged
                ? "Save redeploys the service with this memory: its newest source is built again and replaces the running instances."
                : "Changing memory redeploys the service (a new build of the same source); scaling applies without one."
            }
          />
        </fieldset>
        {errors._ && (
          <p role="alert" class="banner error">
            {errors._}
          </p>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={status?.busy}>
            {memoryChanged ? "Save and redeploy" : "Save"}
          </button>
          {status && (
            <span role="status" aria-busy={status.busy ? "true" : undefined}>
              {status.text}
            </span>
          )}
        </div>
      </form>
      <DeleteService name={name} onDeleted={() => route("/")} />
    </section>
  );
}

/** "Delete service", behind a dialog that asks for the name typed out. */
function DeleteService({ name, onDeleted }: { name: string; onDeleted: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const open = () => {
    setTyped("");
    setError(null);
    dialog.current?.showModal();
  };
  const close = () => dialog.current?.close();
  const confirm = async (e: Event) => {
    e.preventDefault();
    if (typed !== name) return;
    setBusy(true);
    try {
      await must(api.DELETE("/v1/services/{name}", { params: { path: { name } } }));
      close();
      onDeleted();
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };
  return (
    <div class="card danger-zone">
      <h2>Delete service</h2>
      <p class="muted">Stops its instances and removes its deployments, images, logs and variables. This cannot be undone.</p>
      <button type="button" class="danger" onClick={open}>
        Delete service
      </button>
      <dialog ref={dialog} aria-labelledby="delete-h" class="card">
        <form onSubmit={confirm} method="dialog">
          <h2 id="delete-h">Delete {name}?</h2>
          <Field name="confirm" label={`Type ${name} to confirm`}>
            {(p) => (
              <input {...p} type="text" autoComplete="off" spellcheck={false} value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
            )}
          </Field>
          {error && (
            <p role="alert" class="banner error">
              {error}
            </p>
          )}
          <div class="actions">
            <button type="button" onClick={close}>
              Cancel
            </button>
            <button type="submit" class="danger" disabled={typed !== name || busy}>
              {busy ? "Deleting…" : "Delete"}
            </button>
          </div>
        </form>
      </dialog>
    </div>
  );
}
