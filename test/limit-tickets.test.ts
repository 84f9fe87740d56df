import { createHmac } from 'node:crypto'
import t from 'tap'
import { deriveSigningKey, parseTokenOptions, TokenKeys } from '../lib/tokens/jwt.js'
import { AccessTokens } from '../lib/tokens/access-tokens.js'
import { idSetHash, type LimitTicket, LimitTickets } from '../lib/tokens/limit-tickets.js'
import { EPOCH, MINUTE, SECRET } from './helper.js'

/**
 * A limit ticket on its own: what it carries, and which tokens signed with the
 * same key it refuses (the routes tests take it through resolve-limit).
 */

const TTL_MS = 5 * MINUTE
/** The `typ` header of every ticket. */
const TICKET_TYP = 'sg-limit+jwt'

async function signer (): Promise<{ jwt: TokenKeys, tickets: LimitTickets }> {
  const jwt = new TokenKeys(parseTokenOptions({ secret: SECRET }))
  return { jwt, tickets: new LimitTickets(jwt, TTL_MS) }
}

/** An HS256 token signed by hand (under the key derived from the secret): fast-jwt's signer refuses an `exp` that is not a number. */
function handSigned (payload: Record<string, unknown>, header: Record<string, unknown> = { alg: 'HS256', typ: TICKET_TYP, kid: 'default' }): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const input = `${part(header)}.${part(payload)}`
  return `${input}.${createHmac('sha256', deriveSigningKey(SECRET, 'HS256')).update(input).digest('base64url')}`
}

const TICKET: LimitTicket = { userId: 'alice', remember: false, flags: [], fingerprintHash: 'f'.repeat(43), activeHash: 'a'.repeat(43) }

t.test('a ticket without flags carries no flg claim, and reads back with none', async (t) => {
  const { jwt, tickets } = await signer()
  const token = tickets.sign(TICKET, EPOCH)
  t.notOk('flg' in (jwt.decode(token) as Record<string, unknown>), 'no empty list in what the client can read')
  t.same(tickets.verify(token, EPOCH)?.flags, [])
  t.same(tickets.verify(tickets.sign({ ...TICKET, flags: ['new_device'] }, EPOCH), EPOCH)?.flags, ['new_device'])
})

t.test('a token signed with the same key is no ticket unless it is typed as one, has no sid, and expires', async (t) => {
  const { jwt, tickets } = await signer()
  const iat = Math.floor(EPOCH / 1000)
  const claims = { sub: 'alice', fph: TICKET.fingerprintHash, act: TICKET.activeHash, iat, exp: iat + 300 }
  t.ok(tickets.verify(jwt.sign({ ...claims, typ: 'sg-limit' }, TICKET_TYP), EPOCH), 'the control: typed, without sid, with exp')
  for (const typ of [undefined, '', 'SG-LIMIT', 'access']) {
    t.equal(tickets.verify(jwt.sign({ ...claims, typ }, TICKET_TYP), EPOCH), undefined, `typ ${String(typ)}`)
  }
  t.equal(tickets.verify(jwt.sign({ ...claims, typ: 'sg-limit', sid: 'session-1' }, TICKET_TYP), EPOCH), undefined, 'with a sid: an access token')
  const { exp, ...forever } = claims
  t.equal(tickets.verify(jwt.sign({ ...forever, typ: 'sg-limit' }, TICKET_TYP), EPOCH), undefined, 'without exp')
  t.ok(tickets.verify(handSigned({ ...claims, typ: 'sg-limit' }), EPOCH), 'the control, signed by hand')
  t.equal(tickets.verify(handSigned({ ...claims, typ: 'sg-limit', exp: String(exp) }), EPOCH), undefined, 'with an exp that is no number')
  for (const typ of ['at+jwt', 'JWT', 'jwt', 'SG-LIMIT+JWT', 'sg-limit', 'application/sg-limit+jwt']) {
    t.equal(tickets.verify(jwt.sign({ ...claims, typ: 'sg-limit' }, typ), EPOCH), undefined, `typed ${typ} in its header`)
  }
  t.equal(tickets.verify(handSigned({ ...claims, typ: 'sg-limit' }, { alg: 'HS256', kid: 'default' }), EPOCH), undefined, 'no typ in its header')
  t.equal(tickets.verify(handSigned({ ...claims, typ: 'sg-limit' }, { alg: 'HS256', typ: TICKET_TYP, kid: 'other' }), EPOCH), undefined, 'a kid of no key in the ring')
})

t.test('a ticket names its own type in its header, and passes as no access token', async (t) => {
  const { jwt, tickets } = await signer()
  const token = tickets.sign(TICKET, EPOCH)
  t.match(JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()), { typ: TICKET_TYP, kid: 'default' })
  const accessTokens = new AccessTokens(jwt, TTL_MS, 0)
  t.equal(accessTokens.verify(token, EPOCH), 'invalid_token', 'refused by the access-token verifier')
})

t.test('idSetHash: one digest per set of ids, whatever their order or lengths', async (t) => {
  t.equal(idSetHash(['b', 'a', 'c']), idSetHash(['c', 'b', 'a']))
  t.not(idSetHash(['ab', 'c']), idSetHash(['a', 'bc']), 'the ids are kept apart')
  t.not(idSetHash(['a']), idSetHash(['a', 'b']))
})
