import { expectAssignable, expectError, expectType } from 'tsd'
import type { Location, LocationResolver } from 'fastify-session-guard'
import * as main from 'fastify-session-guard'
import { mmdbLocation, type MmdbLocationOptions, type MmdbLocationResolver } from 'fastify-session-guard/geo'

// The geolocation helper is its own entry; what it builds is a resolveLocation.
expectType<Promise<MmdbLocationResolver>>(mmdbLocation('/var/lib/GeoIP/GeoLite2-City.mmdb'))
expectType<Promise<MmdbLocationResolver>>(mmdbLocation(['city-ipv4.mmdb', Buffer.from('')], { coordinates: false, language: 'de' }))
declare const resolve: MmdbLocationResolver
expectType<Location | undefined>(resolve('203.0.113.7'))
expectAssignable<LocationResolver>(resolve)
expectAssignable<MmdbLocationOptions>({ language: 'fr' })
expectError(mmdbLocation('city.mmdb', { languge: 'en' }))
expectError(mmdbLocation(42))
expectError(main.mmdbLocation)
