export function Login() {
  return <section>TODO: Login</section>;
}
