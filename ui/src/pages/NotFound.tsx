export function NotFound() {
  return (
    <section class="empty">
      <h1>Not found</h1>
      <p>
        There is no page at this address. <a href="/">Back to the service list</a>.
      </p>
    </section>
  );
}
