/**
 * A writer of small MaxMind DB files (format 2.0), for the tests of
 * `fastify-session-guard/geo`: the records a test needs, built in memory, so
 * no database is committed. Only what those tests use: a search tree with
 * 24-bit records, and maps, strings, doubles, unsigned integers, arrays and
 * booleans in the data section.
 */
import { isIPv4 } from 'node:net'
import ipaddr from 'ipaddr.js'

export type MmdbValue = string | number | boolean | MmdbValue[] | { [key: string]: MmdbValue }

export interface MmdbFixture {
  ipVersion: 4 | 6
  databaseType?: string
  /** CIDR networks and their records; in an IPv6 database an IPv4 network lands in ::a.b.c.d/96+n. */
  networks: Array<[cidr: string, record: MmdbValue]>
}

const METADATA_MARKER = Buffer.from('abcdef4d61784d696e642e636f6d', 'hex')
const NODE_BYTES = 6

export function writeMmdb ({ ipVersion, databaseType = 'Test-City', networks }: MmdbFixture): Buffer {
  const depth = ipVersion === 4 ? 32 : 128
  // Each node: [left, right]; a number >= 0 is a node, -1 empty, { data } a record's offset.
  const nodes: Array<[Slot, Slot]> = [[-1, -1]]
  const data: Buffer[] = []
  let dataSize = 0
  for (const [cidr, record] of networks) {
    const [address, prefix] = cidr.split('/') as [string, string]
    const bits = addressBits(address, ipVersion)
    const length = Number(prefix) + (ipVersion === 6 && isIPv4(address) ? 96 : 0)
    const encoded = encode(record)
    const offset = dataSize
    data.push(encoded)
    dataSize += encoded.length
    let node = 0
    for (let i = 0; i < length; i++) {
      const side = bits[i] as 0 | 1
      if (i === length - 1) {
        (nodes[node] as [Slot, Slot])[side] = { data: offset }
        break
      }
      let next = (nodes[node] as [Slot, Slot])[side]
      if (typeof next !== 'number' || next === -1) {
        nodes.push([-1, -1])
        next = nodes.length - 1;
        (nodes[node] as [Slot, Slot])[side] = next
      }
      node = next
    }
    if (bits.length !== depth) throw new Error(`${cidr}: not an IPv${ipVersion} network`)
  }
  const nodeCount = nodes.length
  const tree = Buffer.alloc(nodeCount * NODE_BYTES)
  nodes.forEach(([left, right], i) => {
    tree.writeUIntBE(slotValue(left, nodeCount), i * NODE_BYTES, 3)
    tree.writeUIntBE(slotValue(right, nodeCount), i * NODE_BYTES + 3, 3)
  })
  const metadata = encode({
    node_count: nodeCount,
    record_size: 24,
    ip_version: ipVersion,
    database_type: databaseType,
    languages: ['en'],
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: 1_767_225_600,
    description: { en: 'fastify-session-guard test fixture' }
  }, true)
  return Buffer.concat([tree, Buffer.alloc(16), ...data, METADATA_MARKER, metadata])
}

type Slot = number | { data: number }

function slotValue (slot: Slot, nodeCount: number): number {
  if (typeof slot === 'object') return nodeCount + 16 + slot.data
  return slot === -1 ? nodeCount : slot
}

function addressBits (address: string, ipVersion: 4 | 6): Array<0 | 1> {
  const parsed = ipaddr.parse(address)
  const bytes = ipVersion === 6 && parsed.kind() === 'ipv4' ? [...new Array<number>(12).fill(0), ...parsed.toByteArray()] : parsed.toByteArray()
  return bytes.flatMap((byte) => [7, 6, 5, 4, 3, 2, 1, 0].map((shift) => ((byte >> shift) & 1) as 0 | 1))
}

function control (type: number, size: number): Buffer {
  const head = size < 29 ? [size] : size < 285 ? [29, size - 29] : [30, (size - 285) >> 8, (size - 285) & 0xff]
  const [first, ...rest] = head as [number, ...number[]]
  return type <= 7 ? Buffer.from([(type << 5) | first, ...rest]) : Buffer.from([first, type - 7, ...rest])
}

function unsigned (type: number, value: number): Buffer {
  const bytes: number[] = []
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256)
  return Buffer.concat([control(type, bytes.length), Buffer.from(bytes)])
}

/** One value; in the metadata, integers are the unsigned types the format names there (uint16, uint32, uint64). */
function encode (value: MmdbValue, metadata = false): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8')
    return Buffer.concat([control(2, bytes.length), bytes])
  }
  if (typeof value === 'boolean') return control(14, value ? 1 : 0)
  if (typeof value === 'number') {
    if (metadata || (Number.isInteger(value) && value >= 0 && value < 2 ** 32)) {
      return unsigned(value < 2 ** 16 ? 5 : value < 2 ** 32 ? 6 : 9, value)
    }
    const bytes = Buffer.alloc(8)
    bytes.writeDoubleBE(value)
    return Buffer.concat([control(3, 8), bytes])
  }
  if (Array.isArray(value)) return Buffer.concat([control(11, value.length), ...value.map((item) => encode(item, metadata))])
  const entries = Object.entries(value)
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([key, item]) => [encode(key), encode(item, metadata)])])
}
