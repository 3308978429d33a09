/** What a page shows until its data is there: a busy region a test and a screen reader see. */
export function Loading({ what = "Loading…" }: { what?: string }) {
  return (
    <p class="loading" role="status" aria-busy="true">
      <span class="spinner" aria-hidden="true" /> {what}
    </p>
  );
}
