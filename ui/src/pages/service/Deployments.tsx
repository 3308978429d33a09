// Every deployment of the service, and the selected one's build log, live while it runs. The
// table refreshes itself, and at once when the followed deployment's outcome arrives.
import { useEffect, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, errorText, must, type Schemas } from "../../api/client";
import { stateText, useDeploymentEvents, type LogLine } from "../../api/sse";
import { LogLines } from "../../components/LogLines";
import { Loading } from "../../components/Loading";
import { LoadError } from "../../components/LoadError";
import { StateBadge, inProgress } from "../../components/StateBadge";
import { Ago, useNow } from "../../components/time";
import { firstLine, formatDuration, shortSha } from "../../components/format";
import { usePoll } from "../../components/usePoll";
import { tabPath, type TabProps } from "./tabs";
import { isNotFound } from "./useService";
import { Missing } from "./Missing";

type Deployment = Schemas["Deployment"];

const REFRESH_MS = 3000;
/** Build lines shown with a failure's reason. */
const LAST_LINES = 12;

/** The request that deploys the same thing again: the recorded one, env values aside (the
 * service keeps its variables; the record holds only their names). */
export function redeployRequest(name: string, d: Deployment): Schemas["DeployRequest"] {
  return { ...d.request, name, env: [] };
}

export function Deployments({ name }: TabProps) {
  const { query, route } = useLocation();
  const list = usePoll(
    () => must(api.GET("/v1/services/{name}/deployments", { params: { path: { name } } })),
    REFRESH_MS,
    [name],
  );
  const [action, setAction] = useState<{ busy: boolean; text: string; failed?: boolean } | null>(null);
  const deployments = list.data ?? [];
  const newest = deployments[0];
  const selectedId = query.deployment || newest?.id || null;
  const selected = deployments.find((d) => d.id === selectedId);
  const events = useDeploymentEvents(selectedId);

  // The outcome is in: the table shows the new states without waiting for the next refresh.
  useEffect(() => {
    if (events.outcome) list.reload();
  }, [events.outcome]);

  if (isNotFound(list.error)) return <Missing name={name} />;
  if (list.loading && !list.data) return <Loading what="Loading deployments…" />;

  const redeploy = async () => {
    if (!newest) return;
    setAction({ busy: true, text: "Starting a new deployment…" });
    try {
      const d = await must(api.POST("/v1/deployments", { body: redeployRequest(name, newest) }));
      setAction({ busy: false, text: `Deployment ${d.id} queued.` });
      route(tabPath(name, "deployments", { deployment: d.id }));
      list.reload();
    } catch (e) {
      setAction({ busy: false, text: `Redeploy failed: ${errorText(e)}`, failed: true });
    }
  };
  const rollback = async (id: string) => {
    setAction({ busy: true, text: `Rolling back to ${id}…` });
    try {
      const d = await must(
        api.POST("/v1/services/{name}/rollback", { params: { path: { name } }, body: { deployment: id } }),
      );
      setAction({ busy: false, text: `Rolled back: ${d.id} is live again.` });
      list.reload();
    } catch (e) {
      setAction({ busy: false, text: `Rollback failed: ${errorText(e)}`, failed: true });
    }
  };

  return (
    <section aria-label="Deployments" class="deployments">
      <div class="toolbar">
        <button type="button" class="primary" onClick={redeploy} disabled={!newest || action?.busy}>
          Redeploy
        </button>
        <span class="muted">Builds the newest deployment's source again, with the service's variables.</span>
      </div>
      {action && (
        <p role={action.failed ? "alert" : "status"} class={`banner ${action.failed ? "error" : ""}`} aria-busy={action.busy ? "true" : undefined}>
          {action.text}
        </p>
      )}
      <LoadError error={list.error} what="refresh" />
      {deployments.length === 0 ? (
        <div class="empty card">
          <h2>No deployments yet</h2>
          <p>
            Deploy with <a href="/new">the deploy form</a>, or with <code>hoist deploy</code>.
          </p>
        </div>
      ) : (
        <div class="table-wrap">
          <table class="deployment-list cards">
            <thead>
              <tr>
                <th scope="col">Deployment</th>
                <th scope="col">State</th>
                <th scope="col">Commit</th>
                <th scope="col">Created</th>
                <th scope="col" class="num">
                  Duration
                </th>
                <th scope="col">Failure reason</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {deployments.map((d) => (
                <Row
                  key={d.id}
                  name={name}
                  d={d}
                  selected={d.id === selectedId}
                  onRollback={action?.busy ? undefined : () => rollback(d.id)}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {selectedId && (
        <BuildLog
          id={selectedId}
          deployment={selected}
          lines={events.lines}
          status={stateText(events.state)}
          streaming={events.state.kind !== "closed"}
          reason={events.outcome?.reason ?? selected?.failure_reason ?? null}
          failed={(events.outcome?.state ?? selected?.state) === "failed"}
        />
      )}
    </section>
  );
}

function Row({ name, d, selected, onRollback }: { name: string; d: Deployment; selected: boolean; onRollback?: () => void }) {
  const now = useNow();
  const running = inProgress(d.state);
  const ms = (d.finished_at ?? (running ? now : d.updated_at)) - d.created_at;
  return (
    <tr class={selected ? "selected" : undefined} aria-selected={selected ? "true" : undefined}>
      <th scope="row" data-label="Deployment">
        <a href={tabPath(name, "deployments", { deployment: d.id })} aria-current={selected ? "true" : undefined}>
          <code>{d.id}</code>
        </a>
      </th>
      <td data-label="State">
        <StateBadge state={d.state} />
      </td>
      <td data-label="Commit">
        <code title={d.commit_sha ?? undefined}>{shortSha(d.commit_sha)}</code>
        {d.branch ? <span class="muted"> {d.branch}</span> : null}
      </td>
      <td data-label="Created">
        <Ago ms={d.created_at} />
      </td>
      <td data-label="Duration" class="num">
        {formatDuration(ms)}
        {running ? "…" : ""}
      </td>
      <td data-label="Failure reason" class="reason">
        {d.failure_reason ? <span title={d.failure_reason}>{firstLine(d.failure_reason)}</span> : null}
      </td>
      <td data-label="Actions">
        {d.state === "superseded" && (
          <button type="button" onClick={onRollback} disabled={!onRollback} title={`Make ${d.id} live again`}>
            Rollback
          </button>
        )}
      </td>
    </tr>
  );
}

interface BuildLogProps {
  id: string;
  deployment: Deployment | undefined;
  lines: LogLine[];
  status: string;
  streaming: boolean;
  reason: string | null;
  failed: boolean;
}

function BuildLog({ id, deployment, lines, status, streaming, reason, failed }: BuildLogProps) {
  const last = lines.slice(-LAST_LINES);
  return (
    <div class="build card">
      <div class="build-head">
        <h2>
          Build log of <code>{id}</code>
        </h2>
        {deployment && <StateBadge state={deployment.state} />}
        <span role="status" class="muted" aria-busy={streaming ? "true" : undefined}>
          {streaming && <span class="spinner" aria-hidden="true" />} {status}
        </span>
      </div>
      {failed && (
        <div class="failure" role="alert">
          <p>
            <strong>The deployment failed:</strong> {reason ?? "no reason was recorded."}
          </p>
          {last.length > 0 && (
            <>
              <p class="muted">Its last build lines:</p>
              <pre class="last-lines">{last.map((l) => l.line).join("\n")}</pre>
            </>
          )}
        </div>
      )}
      <LogLines
        lines={lines}
        label="Build log"
        busy={streaming}
        showInstance={false}
        empty={streaming ? "Waiting for the first line…" : "This deployment wrote no build lines."}
      />
    </div>
  );
}
