import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { mmdbLocation } from '../lib/geo/index.js'
import { writeMmdb } from './mmdb-fixture.js'

// MaxMind's GeoIP2 City layout (GeoLite2, and DB-IP's own MMDB files).
const GEOIP2_V6 = writeMmdb({
  ipVersion: 6,
  databaseType: 'GeoIP2-City',
  networks: [
    ['203.0.113.0/24', {
      city: { geoname_id: 2988507, names: { en: 'Paris', de: 'Paris', ja: 'パリ' } },
      country: { iso_code: 'FR', names: { en: 'France' } },
      location: { latitude: 48.85749816894531, longitude: 2.3513801097869873, accuracy_radius: 20 }
    }],
    ['198.51.100.0/24', {
      city: { names: { en: 'Munich', de: 'München' } },
      country: { iso_code: 'DE' },
      location: { latitude: 48.1374, longitude: 11.5755 }
    }],
    ['2001:db8:1::/48', {
      city: { names: { en: 'Sydney' } },
      country: { iso_code: 'AU' },
      location: { latitude: -33.8688, longitude: 151.2093 }
    }],
    // A country-level record: no city, no coordinates.
    ['2001:db8:2::/48', { country: { iso_code: 'NZ' } }],
    // Nothing this helper reads.
    ['2001:db8:3::/48', { continent: { code: 'OC' } }],
    // Coordinates out of range are dropped.
    ['2001:db8:4::/48', { country: { iso_code: 'XX' }, location: { latitude: 91.5, longitude: 10.5 } }]
  ]
})

// The flat layout of the ip-location-db packages, one file per family.
const FLAT_V4 = writeMmdb({
  ipVersion: 4,
  databaseType: 'city ipv4',
  networks: [
    ['192.0.2.0/24', { city: 'New York', country_code: 'US', latitude: 40.712799072265625, longitude: -74.00599670410156, state1: 'New York', postcode: '', timezone: '' }],
    ['203.0.113.0/25', { city: '', country_code: 'FR', latitude: 46.5, longitude: 2.5 }]
  ]
})
const FLAT_V6 = writeMmdb({
  ipVersion: 6,
  databaseType: 'city ipv6',
  networks: [['2001:db8:9::/48', { city: 'Tokyo', country_code: 'JP', latitude: 35.6895, longitude: 139.6917 }]]
})

t.test('GeoIP2 layout: city, country and coordinates, as the anomaly rules read them', async (t) => {
  const resolve = await mmdbLocation(GEOIP2_V6)
  t.strictSame(resolve('203.0.113.7'), { country: 'FR', city: 'Paris', latitude: 48.8575, longitude: 2.3514 }, 'coordinates rounded to 4 decimals')
  t.strictSame(resolve('::ffff:203.0.113.7'), resolve('203.0.113.7'), 'an IPv4-mapped address is its IPv4 address')
  t.strictSame(resolve('2001:db8:1::42'), { country: 'AU', city: 'Sydney', latitude: -33.8688, longitude: 151.2093 }, 'IPv6')
  t.strictSame(resolve('2001:DB8:1:0::42%eth0'), resolve('2001:db8:1::42'), 'any notation, zone id ignored')
  t.strictSame(resolve('2001:db8:2::1'), { country: 'NZ' }, 'a country-level record')
  t.strictSame(resolve('2001:db8:4::1'), { country: 'XX' }, 'coordinates out of range are dropped')
  t.equal(resolve('2001:db8:3::1'), undefined, 'a record with nothing to read')
  t.equal(resolve('10.0.0.1'), undefined, 'a private address is in no database')
  t.equal(resolve('2001:db8:ffff::1'), undefined, 'unknown')
  for (const bad of ['', 'not an ip', '127.1', '0x7f.0.0.1', '[2001:db8:1::1]', '203.0.113.7:443', undefined as unknown as string]) {
    t.equal(resolve(bad), undefined, `${String(bad)}: not an address, no throw`)
  }
})

t.test('language: the city name in the language asked for, English when missing', async (t) => {
  const german = await mmdbLocation(GEOIP2_V6, { language: 'de' })
  t.match(german('198.51.100.1'), { city: 'München' })
  const japanese = await mmdbLocation(GEOIP2_V6, { language: 'ja' })
  t.match(japanese('203.0.113.1'), { city: 'パリ' })
  t.match(japanese('198.51.100.1'), { city: 'Munich' }, 'no Japanese name: English')
})

t.test('coordinates: false keeps a city and a country only', async (t) => {
  const resolve = await mmdbLocation(GEOIP2_V6, { coordinates: false })
  t.strictSame(resolve('203.0.113.7'), { country: 'FR', city: 'Paris' })
})

t.test('the flat ip-location-db layout, one IPv4 and one IPv6 file, read from disk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'session-guard-geo-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'city-ipv4.mmdb'), FLAT_V4)
  await writeFile(join(dir, 'city-ipv6.mmdb'), FLAT_V6)
  const resolve = await mmdbLocation([join(dir, 'city-ipv4.mmdb'), join(dir, 'city-ipv6.mmdb')])
  t.strictSame(resolve('192.0.2.10'), { country: 'US', city: 'New York', latitude: 40.7128, longitude: -74.006 })
  t.strictSame(resolve('203.0.113.1'), { country: 'FR', latitude: 46.5, longitude: 2.5 }, 'an empty city is no city')
  t.strictSame(resolve('2001:db8:9::1'), { country: 'JP', city: 'Tokyo', latitude: 35.6895, longitude: 139.6917 })
  t.equal(resolve('198.51.100.1'), undefined)
})

t.test('an IPv6 address is never looked up in an IPv4 database, which would misread it', async (t) => {
  // 192.0.2.0/24 is 0xc0000200: an IPv6 address starting c000:2xx walks the same path in an IPv4 tree.
  const resolve = await mmdbLocation(FLAT_V4)
  t.match(resolve('192.0.2.1'), { city: 'New York' })
  t.equal(resolve('c000:200::1'), undefined)
})

t.test('databases are asked in order; the first that knows the address answers', async (t) => {
  const flatFirst = await mmdbLocation([FLAT_V4, GEOIP2_V6])
  t.match(flatFirst('203.0.113.1'), { country: 'FR', latitude: 46.5 }, 'the flat file knows 203.0.113.0/25')
  t.match(flatFirst('203.0.113.200'), { city: 'Paris' }, 'the second file knows the rest of the /24')
  t.match(flatFirst('2001:db8:1::1'), { city: 'Sydney' })
  const geoip2First = await mmdbLocation([GEOIP2_V6, FLAT_V4])
  t.match(geoip2First('203.0.113.1'), { city: 'Paris' })
})

t.test('bad databases and options are refused with a coded error naming them', async (t) => {
  const code = 'FST_SESSION_GUARD_INVALID_OPTION'
  await t.rejects(mmdbLocation('/nonexistent/city.mmdb'), { code, message: /geo\.databases\[0\].*ENOENT.*\/nonexistent\/city\.mmdb/ })
  await t.rejects(mmdbLocation([FLAT_V4, Buffer.from('not a database')]), { code, message: /"geo\.databases\[1\]": is not an MMDB database$/ })
  const dir = await mkdtemp(join(tmpdir(), 'session-guard-geo-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'empty.mmdb'), '')
  await t.rejects(mmdbLocation(join(dir, 'empty.mmdb')), { code, message: /is not an MMDB database: .*empty\.mmdb/ })
  await t.rejects(mmdbLocation([42 as unknown as string]), { code, message: /"geo\.databases\[0\]": must be a file path or a Buffer/ })
  await t.rejects(mmdbLocation([]), { code, message: /"geo\.databases": must name at least one/ })
  await t.rejects(mmdbLocation(FLAT_V4, { coordinates: 'yes' as unknown as boolean }), { code, message: /geo\.coordinates/ })
  await t.rejects(mmdbLocation(FLAT_V4, { language: '' }), { code, message: /geo\.language/ })
  await t.rejects(mmdbLocation(FLAT_V4, { languge: 'en' } as never), { code, message: /geo\.languge/ })
})
