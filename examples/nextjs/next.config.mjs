import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

/** @type {import('next').NextConfig} */
export default {
  // This folder is its own project, inside the library's repository (which has a lockfile of its own).
  outputFileTracingRoot: dirname(fileURLToPath(import.meta.url)),
  poweredByHeader: false,
  // The library's lint configuration (found in a parent folder) is not this app's.
  eslint: { ignoreDuringBuilds: true }
}
