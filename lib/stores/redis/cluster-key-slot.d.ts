/** `cluster-key-slot` ships no types: the one function the store uses. */
declare module 'cluster-key-slot' {
  /** The Cluster hash slot (0 to 16383) of a key, honouring its `{hash tag}`. */
  function generate (key: string): number
  export = generate
}
