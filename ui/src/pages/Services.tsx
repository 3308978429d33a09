export function Services() {
  return <section>TODO: Services</section>;
}
