import { useRoute } from "preact-iso";
import { tabs } from "./tabs";
import { NotFound } from "../NotFound";

/** /services/NAME[/TAB]: the service's header, its tabs, and the tab the address names. */
export function ServicePage() {
  const { params } = useRoute();
  const name = params.name ?? "";
  const tab = tabs.find((t) => t.path === (params.tab ?? ""));
  if (!tab) return <NotFound />;
  const Tab = tab.component;
  return (
    <div class="service-page">
      <header class="page-head">
        <h1>{name}</h1>
      </header>
      <nav class="tabs" aria-label="Service">
        {tabs.map((t) => (
          <a
            href={`/services/${encodeURIComponent(name)}${t.path ? "/" + t.path : ""}`}
            aria-current={t === tab ? "page" : undefined}
          >
            {t.label}
          </a>
        ))}
      </nav>
      <Tab name={name} />
    </div>
  );
}
