// The page's shell: the session, the top bar and the routes. Each page has its own address, so
// a link can be shared and reloaded.
import { LocationProvider, Route, Router } from "preact-iso";
import { Session } from "./session";
import { Shell } from "./components/Shell";
import { Login } from "./pages/Login";
import { Services } from "./pages/Services";
import { NewDeploy } from "./pages/New";
import { ServicePage } from "./pages/service/ServicePage";
import { NotFound } from "./pages/NotFound";

export function App() {
  return (
    <LocationProvider>
      <Router>
        <Route path="/login" component={Login} />
        <Route default component={Authed} />
      </Router>
    </LocationProvider>
  );
}

/** Every page but /login needs a session; without one it leads to /login. */
function Authed() {
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
