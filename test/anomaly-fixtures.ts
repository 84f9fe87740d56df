/** Places and devices the anomaly tests log in from. */

/** What the tests' `resolveLocation` answers, by IP. */
export const PLACES: Record<string, { country: string, city: string, latitude: number, longitude: number }> = {
  '203.0.113.1': { country: 'FR', city: 'Paris', latitude: 48.8566, longitude: 2.3522 },
  '203.0.113.2': { country: 'FR', city: 'Lyon', latitude: 45.764, longitude: 4.8357 },
  '198.51.100.1': { country: 'AU', city: 'Sydney', latitude: -33.8688, longitude: 151.2093 },
  '192.0.2.1': { country: 'DE', city: 'Berlin', latitude: 52.52, longitude: 13.405 },
  '203.0.113.3': { country: 'FR', city: 'Reims', latitude: 49.2583, longitude: 4.0317 }
}
export const FIREFOX = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0'
export const SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1'
