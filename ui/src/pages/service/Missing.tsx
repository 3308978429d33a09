/** The tab of a service that does not exist (deleted, or a typo in the address). */
export function Missing({ name }: { name: string }) {
  return (
    <div class="empty card">
      <h2>No service named “{name}”</h2>
      <p>
        It may have been deleted. See <a href="/">the service list</a>, or deploy it with{" "}
        <a href="/new">the deploy form</a>.
      </p>
    </div>
  );
}
