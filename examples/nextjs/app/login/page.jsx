export default async function Login ({ searchParams }) {
  const { error } = await searchParams
  return (
    <main>
      <h1>Sign in</h1>
      {error === undefined ? null : <p id='error' role='alert'>Wrong username or password.</p>}
      {/* A plain form: the route handler signs in through the API and passes its cookies back. */}
      <form method='post' action='/auth/login'>
        <label>Username <input name='username' autoComplete='username' required /></label>
        <label>Password <input name='password' type='password' autoComplete='current-password' required /></label>
        <button type='submit'>Sign in</button>
      </form>
    </main>
  )
}
