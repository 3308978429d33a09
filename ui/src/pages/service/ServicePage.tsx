import { useRoute } from "preact-iso";
import { tabPath, tabs } from "./tabs";
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
        <p class="crumbs">
          <a href="/">Service list</a> /
        </p>
        <h1>{name}</h1>
      </header>
      <nav class="tabs" aria-label="Service">
        {tabs.map((t) => (
          <a key={t.path} href={tabPath(name, t.path)} aria-current={t === tab ? "page" : undefined}>
            {t.label}
          </a>
        ))}
      </nav>
      {/* Keyed by service, so a tab never shows one service's data under another's name. */}
      <Tab key={name} name={name} />
    </div>
  );
}
