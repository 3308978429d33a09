// The page's shell: the session, the top bar and the routes. Each page has its own address, so
// a link can be shared and reloaded.
import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { Session } from "./session";
import { Shell } from "./components/Shell";
import { ConnectionBanner } from "./components/ConnectionBanner";
import { Login } from "./pages/Login";
import { Services } from "./pages/Services";
import { NewDeploy } from "./pages/New";
import { ServicePage } from "./pages/service/ServicePage";
import { NotFound } from "./pages/NotFound";

export function App() {
  return (
    <LocationProvider>
      <ConnectionBanner />
      <Pages />
    </LocationProvider>
  );
}

/**
 * /login stands alone; every other page needs a session (without one it leads to /login) and
 * sits in the top bar. The session is checked once, not on every page change: one Router under
 * it (a Router nested in a `default` route would see an empty path).
 */
function Pages() {
  const { path } = useLocation();
  if (path === "/login") return <Login />;
  return (
    <Session>
      <Shell>
        <Router>
          <Route path="/" component={Services} />
          <Route path="/new" component={NewDeploy} />
          <Route path="/services/:name" component={ServicePage} />
          <Route path="/services/:name/:tab" component={ServicePage} />
          <Route default component={NotFound} />
        </Router>
      </Shell>
    </Session>
  );
}
