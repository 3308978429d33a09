const express = require("express");

const app = express();
const port = Number(process.env.PORT || 8080);

app.get("/", (req, res) => {
  res.send(`Hello from Express on Hoist! (node ${process.version})\n`);
});

app.get("/kaithhealth", (req, res) => res.send("ok\n"));

app.listen(port, () => console.log(`listening on ${port}`));
