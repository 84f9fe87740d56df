// Plain SVG charts for the admin dashboard: no library, no build step. Each
// chart is drawn at its container's width in CSS pixels (so text stays
// readable on a phone) and redrawn when that width changes. Bars and points
// carry data-label and data-value, for assistive text and for the tests.

const NS = 'http://www.w3.org/2000/svg'
const HEIGHT = 240
const MARGIN = { top: 16, right: 16, bottom: 44, left: 48 }

function el (name, attributes = {}, text) {
  const node = document.createElementNS(NS, name)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value))
  if (text !== undefined) node.textContent = text
  return node
}

/** A round maximum and its ticks: 0, 1, 2 … or 0, 5, 10 … */
function scale (max) {
  if (max <= 0) return { top: 1, ticks: [0, 1] }
  const rough = max / 4
  const power = 10 ** Math.floor(Math.log10(rough))
  const step = [1, 2, 5, 10].map((n) => n * power).find((n) => n >= rough && Number.isInteger(n)) ?? Math.ceil(rough)
  const top = Math.ceil(max / step) * step
  const ticks = []
  for (let tick = 0; tick <= top; tick += step) ticks.push(tick)
  return { top, ticks }
}

function frame (container, name, title) {
  const width = Math.max(280, Math.floor(container.clientWidth || 600))
  const svg = el('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img', 'aria-label': title, 'data-chart': name })
  svg.append(el('title', {}, title))
  return { svg, width, plotWidth: width - MARGIN.left - MARGIN.right, plotHeight: HEIGHT - MARGIN.top - MARGIN.bottom }
}

function axes (svg, { width, plotHeight }, { top, ticks }, { xTitle, yTitle }) {
  const y = (value) => MARGIN.top + plotHeight - (value / top) * plotHeight
  for (const tick of ticks) {
    svg.append(el('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(tick), y2: y(tick), class: tick === 0 ? 'axis' : 'grid' }))
    svg.append(el('text', { x: MARGIN.left - 8, y: y(tick) + 4, class: 'tick', 'text-anchor': 'end' }, formatNumber(tick)))
  }
  svg.append(el('text', { x: 12, y: MARGIN.top + plotHeight / 2, class: 'axis-title', 'text-anchor': 'middle', transform: `rotate(-90 12 ${MARGIN.top + plotHeight / 2})` }, yTitle))
  svg.append(el('text', { x: MARGIN.left + (width - MARGIN.left - MARGIN.right) / 2, y: HEIGHT - 4, class: 'axis-title', 'text-anchor': 'middle' }, xTitle))
  return y
}

function formatNumber (n) {
  return Number.isInteger(n) ? String(n) : n.toFixed(1)
}

function legend (series) {
  const list = document.createElement('ul')
  list.className = 'legend'
  for (const { name, color } of series) {
    const item = document.createElement('li')
    item.innerHTML = '<span class="swatch"></span>'
    item.firstChild.style.background = color
    item.append(name)
    list.append(item)
  }
  return list
}

/**
 * Vertical bars: one group per label, one bar per series. `series`: [{ name, color, values }].
 */
export function barChart (container, { name, title, labels, series, xTitle, yTitle }) {
  const draw = () => {
    const box = frame(container, name, title)
    const { svg, plotWidth, plotHeight } = box
    const max = Math.max(0, ...series.flatMap((s) => s.values))
    const y = axes(svg, box, scale(max), { xTitle, yTitle })
    const group = plotWidth / Math.max(1, labels.length)
    const bar = Math.min(48, (group * 0.7) / series.length)
    // Skip labels that would overlap on a narrow screen.
    const every = Math.ceil(labels.length / Math.max(1, Math.floor(plotWidth / 44)))
    labels.forEach((label, i) => {
      const left = MARGIN.left + i * group + (group - bar * series.length) / 2
      series.forEach((s, j) => {
        const value = s.values[i]
        const rect = el('rect', { x: left + j * bar, y: y(value), width: Math.max(1, bar - 2), height: MARGIN.top + plotHeight - y(value), fill: s.color, rx: 2, class: 'bar', 'data-series': s.name, 'data-label': label, 'data-value': value })
        rect.append(el('title', {}, `${s.name}, ${label}: ${value}`))
        svg.append(rect)
      })
      if (i % every === 0) svg.append(el('text', { x: MARGIN.left + i * group + group / 2, y: MARGIN.top + plotHeight + 16, class: 'tick', 'text-anchor': 'middle' }, label))
    })
    return svg
  }
  mount(container, draw, series.length > 1 ? legend(series) : null)
}

/**
 * Lines over time: `times` (epoch ms), `series`: [{ name, color, values }] where a
 * value may be null (no sample: the line skips it).
 */
export function lineChart (container, { name, title, times, series, yTitle }) {
  const draw = () => {
    const box = frame(container, name, title)
    const { svg, plotWidth } = box
    const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null)))
    const y = axes(svg, box, scale(max), { xTitle: 'Time', yTitle })
    const x = (i) => MARGIN.left + (times.length < 2 ? plotWidth / 2 : (i / (times.length - 1)) * plotWidth)
    const labels = Math.max(2, Math.floor(plotWidth / 80))
    const every = Math.max(1, Math.ceil(times.length / labels))
    times.forEach((time, i) => {
      if ((times.length - 1 - i) % every !== 0) return
      svg.append(el('text', { x: x(i), y: HEIGHT - MARGIN.bottom + 16, class: 'tick', 'text-anchor': 'middle' }, clockTime(time)))
    })
    for (const s of series) {
      let path = ''
      s.values.forEach((value, i) => {
        if (value === null) return
        path += `${path === '' || s.values[i - 1] === null ? 'M' : 'L'}${x(i).toFixed(1)},${y(value).toFixed(1)}`
      })
      svg.append(el('path', { d: path, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round', class: 'line', 'data-series': s.name }))
      s.values.forEach((value, i) => {
        if (value === null || value === 0) return
        const dot = el('circle', { cx: x(i), cy: y(value), r: 3, fill: s.color, class: 'point', 'data-series': s.name, 'data-label': clockTime(times[i]), 'data-value': value })
        dot.append(el('title', {}, `${s.name} at ${clockTime(times[i])}: ${value}`))
        svg.append(dot)
      })
    }
    return svg
  }
  mount(container, draw, legend(series))
}

/** Horizontal bars of shares (0–1), largest first: device types, browsers. */
export function shareChart (container, { name, title, shares, color }) {
  const entries = Object.entries(shares).sort((a, b) => b[1] - a[1])
  const list = document.createElement('ul')
  list.className = 'shares'
  list.dataset.chart = name
  list.setAttribute('aria-label', title)
  for (const [label, share] of entries) {
    const item = document.createElement('li')
    item.dataset.label = label
    item.dataset.value = String(share)
    item.innerHTML = '<span class="share-label"></span><span class="track"><span class="fill"></span></span><span class="share-value"></span>'
    item.querySelector('.share-label').textContent = label
    item.querySelector('.fill').style.width = `${(share * 100).toFixed(1)}%`
    item.querySelector('.fill').style.background = color
    item.querySelector('.share-value').textContent = `${Math.round(share * 100)} %`
    list.append(item)
  }
  if (entries.length === 0) list.innerHTML = '<li class="empty">No live sessions</li>'
  container.replaceChildren(list)
}

export function clockTime (epochMs) {
  return new Date(epochMs).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

const observed = new WeakMap()

/** Draws now, and again when the container's width changes (a rotated phone, a resized window). */
function mount (container, draw, after) {
  const render = () => container.replaceChildren(draw(), ...(after ? [after] : []))
  render()
  observed.get(container)?.disconnect()
  let width = container.clientWidth
  const observer = new window.ResizeObserver(() => {
    if (container.clientWidth === width) return
    width = container.clientWidth
    render()
  })
  observer.observe(container)
  observed.set(container, observer)
}
