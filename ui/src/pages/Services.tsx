// `/`: every service with its state, instances, latest deployment and last day's traffic,
// refreshed every few seconds.
import { useLayoutEffect } from "preact/hooks";
import { getServices } from "../api/early";
import { LoadError } from "../components/LoadError";
import { usePoll } from "../components/usePoll";
import { Loading } from "../components/Loading";
import { StateBadge } from "../components/StateBadge";
import { Ago } from "../components/time";
import { formatCount } from "../components/format";
import { instanceCounts, serviceState } from "../components/serviceState";

const REFRESH_MS = 3000;
let marked = false;

export function Services() {
  const { data, error, loading } = usePoll(getServices, REFRESH_MS, []);

  useLayoutEffect(() => {
    // E2E's benchmark reads this: the first time the table holds data after the page loaded
    // (the DOM is there; the frame that paints it follows).
    if (data && !marked) {
      marked = true;
      performance.mark("hoist:services-interactive");
      // After the frame that paints it (a task queued from the frame's callback runs once that
      // frame is done): the benchmark reports this one too.
      requestAnimationFrame(() => setTimeout(() => performance.mark("hoist:services-painted")));
    }
  }, [data]);

  return (
    <section aria-labelledby="services-h" aria-busy={loading ? "true" : undefined}>
      <div class="page-head">
        <h1 id="services-h">Services</h1>
        <a href="/new" class="button">
          New deployment
        </a>
      </div>
      <LoadError error={error} what="load the services" />
      {loading && !data && <Loading what="Loading services…" />}
      {data && data.length === 0 && (
        <div class="empty card">
          <h2>No services yet</h2>
          <p>
            Deploy one with <a href="/new">the deploy form</a>, or from a terminal:
          </p>
          <pre>
            <code>hoist deploy ./my-app --name my-app</code>
          </pre>
        </div>
      )}
      {data && data.length > 0 && (
        <div class="table-wrap">
          <table class="services cards">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">URL</th>
                <th scope="col">State</th>
                <th scope="col">Instances</th>
                <th scope="col">Last deployment</th>
                <th scope="col" class="num">
                  Requests 24 h
                </th>
                <th scope="col" class="num">
                  5xx 24 h
                </th>
              </tr>
            </thead>
            <tbody>
              {data.map((s) => {
                const latest = s.deployments[0];
                const { ready, frozen } = instanceCounts(s);
                return (
                  <tr key={s.name}>
                    <th scope="row" data-label="Name">
                      <a href={`/services/${encodeURIComponent(s.name)}`}>{s.name}</a>
                    </th>
                    <td data-label="URL">
                      <a href={s.url} target="_blank" rel="noopener noreferrer" class="url">
                        {s.url}
                      </a>
                    </td>
                    <td data-label="State">
                      <StateBadge state={serviceState(s)} />
                    </td>
                    <td data-label="Instances">
                      {ready} ready · {frozen} frozen
                    </td>
                    <td data-label="Last deployment">
                      {latest ? (
                        <>
                          <a href={`/services/${encodeURIComponent(s.name)}/deployments?deployment=${latest.id}`}>
                            <code>{latest.id}</code>
                          </a>{" "}
                          <StateBadge state={latest.state} /> <Ago ms={latest.created_at} />
                        </>
                      ) : (
                        <span class="muted">none</span>
                      )}
                    </td>
                    <td data-label="Requests 24 h" class="num">
                      {formatCount(s.requests_24h)}
                    </td>
                    <td data-label="5xx 24 h" class={`num ${(s.errors_24h ?? 0) > 0 ? "bad" : ""}`}>
                      {formatCount(s.errors_24h)}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
