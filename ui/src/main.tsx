import { render } from "preact";
import { App } from "./app";
import { startEarly } from "./api/early";
import "./styles.css";

startEarly(location.pathname);
const root = document.getElementById("app");
if (root) render(<App />, root);
