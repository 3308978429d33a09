export function NewDeploy() {
  return <section>TODO: New</section>;
}
