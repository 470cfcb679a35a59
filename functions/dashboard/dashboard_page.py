"""The customer dashboard as one self-contained HTML page: inline CSS, vanilla JS, charts drawn as inline SVG.

Nothing is loaded from anywhere but the page's own origin (no CDN, no web fonts, no images): the page reads its
data from `dashboard/data` (relative, so it works under a stage prefix) with the token as a Bearer credential.
The Content-Security-Policy allows exactly this page's inline script and style by their SHA-256 hashes, and
network access to 'self' only. Every value is written with `textContent` or SVG attributes, never as HTML.

Amounts stay the decimal strings the API gives; the JS only groups digits for display. Floats appear only in
chart geometry.
"""

from __future__ import annotations

import base64
import hashlib
import html

STYLE = """
:root { --ink: #1d2433; --muted: #5b6475; --line: #dde2ea; --bg: #f5f7fa; --card: #ffffff;
  --accent: #2f6fed; --warn: #c77700; --bad: #c62828; --good: #1b7f4b; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: var(--ink); background: var(--bg); }
header { padding: 20px 32px; background: var(--ink); color: #fff; display: flex; align-items: baseline;
  justify-content: space-between; flex-wrap: wrap; gap: 8px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header p { margin: 0; color: #c9d1e0; font-size: 13px; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; display: grid; gap: 20px;
  grid-template-columns: repeat(2, minmax(0, 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px;
  min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { margin: 0 0 12px; font-size: 15px; font-weight: 600; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.big { font-size: 44px; font-weight: 700; letter-spacing: -.02em; font-variant-numeric: tabular-nums; }
.unit { font-size: 16px; color: var(--muted); font-weight: 500; margin-left: 6px; }
.stats { display: flex; flex-wrap: wrap; gap: 18px 32px; margin-top: 10px; }
.stat .label { display: block; font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.stat .value { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stat .value.bad { color: var(--bad); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid var(--line); font-size: 14px; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
td.num, th.num { text-align: right; white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  background: #e6ecf5; color: var(--muted); }
.badge.active { background: #dff3e8; color: var(--good); }
.badge.pending { background: #e3ecfd; color: var(--accent); }
.badge.expiring { background: #fdf0d9; color: var(--warn); }
.badge.depleted, .badge.expired, .badge.voided { background: #f1f1f1; color: #777; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .axis-label { fill: var(--muted); font-size: 11px; }
svg.chart .series { fill: none; stroke-width: 2.5; stroke-linejoin: round; stroke-linecap: round; }
svg.chart .area { stroke: none; fill: #2f6fed22; }
svg.chart .marker { stroke-width: 1.5; stroke-dasharray: 5 4; }
svg.chart .marker.depletion { stroke: var(--bad); }
svg.chart .marker.expiry { stroke: var(--warn); }
svg.chart .marker-label { font-size: 11px; font-weight: 600; }
svg.chart .marker-label.depletion { fill: var(--bad); }
svg.chart .marker-label.expiry { fill: var(--warn); }
svg.chart .empty { fill: var(--muted); font-size: 14px; }
ul.legend { list-style: none; margin: 10px 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: 8px 24px; }
ul.legend li { font-size: 13px; color: var(--muted); }
ul.legend svg { vertical-align: middle; margin-right: 6px; }
ul.legend b { color: var(--ink); }
ul.plain { margin: 8px 0 0; padding-left: 18px; color: var(--muted); font-size: 14px; }
#recommendation .big { font-size: 32px; }
.note { color: var(--muted); font-size: 13px; margin: 8px 0 0; }
.error-box { max-width: 560px; margin: 80px auto; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; padding: 28px 32px; }
.error-box h1 { margin: 0 0 8px; font-size: 22px; }
.error-box code { font-size: 14px; background: #f0f2f6; padding: 2px 6px; border-radius: 4px; }
.scroll { overflow-x: auto; }  /* a wide table scrolls inside its section, never the page */
form.buy { display: flex; flex-wrap: wrap; align-items: center; gap: 10px; margin-top: 10px; }
form.buy input { font: inherit; width: 10em; max-width: 100%; padding: 7px 10px; border: 1px solid var(--line);
  border-radius: 6px; }
button { font: inherit; font-weight: 600; padding: 8px 16px; border: 0; border-radius: 6px; background: var(--accent);
  color: #fff; cursor: pointer; }
button:disabled { background: #9fb5e6; cursor: default; }
#checkout-notice { grid-column: 1 / -1; border-left: 4px solid var(--accent); }
#checkout-notice.cancel { border-left-color: var(--muted); }
.error-text { color: var(--bad); }
[hidden] { display: none !important; }
@media (max-width: 800px) { main { grid-template-columns: minmax(0, 1fr); padding: 16px; } }
@media (max-width: 480px) {
  header { padding: 14px 16px; }
  main { padding: 12px; gap: 12px; }
  section { padding: 14px; }
  .big { font-size: 34px; }
  .stats { gap: 12px 20px; }
}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2f6fed", "#e0572b", "#1b9e77", "#9c4dcc", "#c99a00", "#0b8ea8", "#d6336c", "#5c6f82"];
  var W = 900, H = 250, L = 64, R = 16, T = 18, B = 30;
  var DAY_MS = 86400000;

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value; }
  function el(tag, attrs, parent, content) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (content !== undefined) { node.textContent = content; }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function cell(row, value, cls) {
    var td = document.createElement("td");
    td.textContent = value;
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }
  // Amounts are decimal strings: grouped for display, never turned into floats.
  function counted(text, noun) {  // "1 event", "2 events", "0.5 credits"
    return text + " " + noun + (text === "1" ? "" : "s");
  }
  function amount(s) {
    if (s === null || s === undefined) { return "\u2014"; }
    var negative = s.charAt(0) === "-";
    var parts = (negative ? s.slice(1) : s).split(".");
    var whole = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (negative ? "-" : "") + whole + (parts.length > 1 ? "." + parts[1] : "");
  }
  // At most `digits` fractional digits, cut (not rounded) on the string: for projected figures only.
  function cut(s, digits) {
    var i = s.indexOf(".");
    if (i < 0) { return s; }
    var kept = digits > 0 ? s.slice(0, i + 1 + digits).replace(/0+$/, "").replace(/\.$/, "") : s.slice(0, i);
    return kept === "" || kept === "-" || kept === "-0" ? "0" : kept;
  }
  function money(m) { return m ? amount(m.amount) + " " + m.currency : "\u2014"; }
  function day(iso) { return iso ? iso.slice(0, 10) : "\u2014"; }
  function when(iso) { return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "\u2014"; }
  function short(n) {  // axis labels only
    var a = Math.abs(n);
    var trim = function (v) { return String(parseFloat(v.toFixed(2))); };
    if (a >= 1e6) { return trim(n / 1e6) + "M"; }
    if (a >= 1e3) { return trim(n / 1e3) + "k"; }
    return trim(n);
  }

  // A step of 1, 2, 2.5 or 5 times a power of ten, so that about four steps cover the largest value.
  function niceStep(maxY) {
    var raw = (maxY > 0 ? maxY * 1.05 : 1) / 4;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (raw <= steps[i] * magnitude) { return steps[i] * magnitude; }
    }
    return 10 * magnitude;
  }
  function frame(svg, maxY, labels) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var step = niceStep(maxY);
    var ticks = Math.max(1, Math.ceil((maxY > 0 ? maxY * 1.05 : 1) / step));
    var top = step * ticks;
    for (var k = 0; k <= ticks; k++) {
      var y = T + (H - T - B) * (1 - k / ticks);
      el("line", {"class": "grid", x1: L, x2: W - R, y1: y, y2: y}, svg);
      el("text", {"class": "axis-label", x: L - 8, y: y + 4, "text-anchor": "end"}, svg, short(step * k));
    }
    labels.forEach(function (lab) {
      el("text", {"class": "axis-label", x: lab.x, y: H - 10, "text-anchor": lab.anchor || "middle"}, svg, lab.text);
    });
    return function (v) { return T + (H - T - B) * (1 - v / top); };
  }
  function pathOf(points) {
    return points.map(function (p, i) { return (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1); }).join(" ");
  }

  function renderSummary(data) {
    var w = data.wallet;
    var balance = $("balance");
    balance.textContent = amount(w.balance);
    balance.setAttribute("data-value", w.balance);
    text("customer", data.customerId);
    text("link-expiry", "Link valid until " + when(data.linkExpiresAt));
    text("available", amount(w.available));
    text("overage", amount(w.overage));
    $("overage").setAttribute("data-value", w.overage);
    if (w.overage !== "0") { $("overage").classList.add("bad"); }
    text("next-expiry", when(w.nextExpiry));
    text("as-of", "As of " + when(w.asOf));
    renderMeters(w.availableByMeter || {});
  }

  // With cards for some meters only, what each of those meters may use now, and what any other meter may
  function renderMeters(byMeter) {
    var box = $("meters");
    while (box.firstChild) { box.removeChild(box.firstChild); }
    var scoped = Object.keys(byMeter).filter(function (m) { return m !== "*"; });
    box.hidden = scoped.length === 0;
    scoped.concat(scoped.length ? ["*"] : []).forEach(function (m) {
      var stat = document.createElement("div");
      stat.className = "stat";
      stat.setAttribute("data-meter", m);
      var label = document.createElement("span");
      label.className = "label";
      label.textContent = m === "*" ? "Usable for other meters" : "Usable for " + m;
      var value = document.createElement("span");
      value.className = "value";
      value.textContent = amount(byMeter[m]);
      value.setAttribute("data-value", byMeter[m]);
      stat.appendChild(label);
      stat.appendChild(value);
      box.appendChild(stat);
    });
  }

  function renderCards(cards, expiring) {
    var body = $("cards").querySelector("tbody");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    var soon = {};
    expiring.forEach(function (e) { soon[e.cardId] = true; });
    cards.forEach(function (c) {
      var row = document.createElement("tr");
      row.setAttribute("data-card-id", c.cardId);
      row.setAttribute("data-status", c.status);
      row.setAttribute("data-remaining", c.remaining);
      cell(row, c.source + (c.appliesTo ? " \u00b7 " + c.appliesTo.meters.join(", ") : ""));
      var status = cell(row, "");  // second: on a phone the table scrolls, and the status must show without it
      var badge = document.createElement("span");
      badge.className = "badge " + c.status + (soon[c.cardId] ? " expiring" : "");
      badge.textContent = c.status + (soon[c.cardId] ? " \u00b7 expires unused" : "");
      status.appendChild(badge);
      cell(row, amount(c.credits), "num");
      cell(row, amount(c.remaining), "num");
      cell(row, money(c.price), "num");
      cell(row, day(c.effectiveAt));
      var expires = cell(row, c.expiresAt ? when(c.expiresAt) : "never", "expires");
      if (c.expiresAt) { expires.setAttribute("data-expires-at", c.expiresAt); }
      body.appendChild(row);
    });
    $("cards-empty").hidden = cards.length > 0;
  }

  // Every card, retired ones too, newest first: a page at a time, the next one on "More cards"
  var moreCards = null;
  function renderAllCards(page, append) {
    var body = $("all-cards").querySelector("tbody");
    if (!append) { while (body.firstChild) { body.removeChild(body.firstChild); } }
    page.cards.forEach(function (c) {
      var row = document.createElement("tr");
      row.setAttribute("data-card-id", c.cardId);
      row.setAttribute("data-status", c.status);
      var status = cell(row, "");
      var badge = document.createElement("span");
      badge.className = "badge " + c.status;
      badge.textContent = c.status;
      status.appendChild(badge);
      cell(row, c.source + (c.appliesTo ? " \u00b7 " + c.appliesTo.meters.join(", ") : ""));
      cell(row, amount(c.credits), "num");
      cell(row, amount(c.remaining), "num");
      cell(row, money(c.price), "num");
      cell(row, day(c.effectiveAt));
      cell(row, c.expiresAt ? day(c.expiresAt) : "never");
      body.appendChild(row);
    });
    moreCards = page.nextCursor;
    $("all-cards-more").hidden = !moreCards;
    $("all-cards-empty").hidden = body.children.length > 0;
    $("all-cards").setAttribute("data-rows", String(body.children.length));
  }
  function loadCards(append) {
    var more = $("all-cards-more");
    more.disabled = true;
    call("GET", "dashboard/cards" + (append ? "?cursor=" + encodeURIComponent(moreCards) : "")).then(function (answer) {
      more.disabled = false;
      if (answer.status === 200) { renderAllCards(answer.body, append); }
      else { $("all-cards-error").textContent = problem(answer); }
    });
  }
  $("all-cards-more").addEventListener("click", function () { loadCards(true); });

  function renderUsage(usage) {
    var svg = $("usage-chart");
    var meters = usage.meters;
    var n = meters.length ? meters[0].buckets.length : 0;
    var maxY = 0;
    meters.forEach(function (m) {
      m.buckets.forEach(function (b) { maxY = Math.max(maxY, parseFloat(b.credits)); });
    });
    var x = function (i) { return L + (W - L - R) * (n > 1 ? i / (n - 1) : 0.5); };
    var labels = n ? [
      {x: x(0), text: day(meters[0].buckets[0].start), anchor: "start"},
      {x: x(Math.floor((n - 1) / 2)), text: day(meters[0].buckets[Math.floor((n - 1) / 2)].start)},
      {x: x(n - 1), text: day(meters[0].buckets[n - 1].start), anchor: "end"}
    ] : [];
    var y = frame(svg, maxY, labels);
    var legend = $("usage-legend");
    if (!meters.length) {
      el("text", {"class": "empty", x: W / 2, y: H / 2, "text-anchor": "middle"}, svg, "No usage in the last 30 days");
    }
    meters.forEach(function (m, k) {
      var color = PALETTE[k % PALETTE.length];
      var points = m.buckets.map(function (b, i) { return [x(i), y(parseFloat(b.credits))]; });
      el("path", {"class": "series", d: pathOf(points), stroke: color, "data-meter": m.meter}, svg);
      var item = document.createElement("li");
      item.setAttribute("data-meter", m.meter);
      item.setAttribute("data-credits", m.credits);
      var swatch = el("svg", {width: 14, height: 14, viewBox: "0 0 14 14"}, item);
      el("rect", {x: 0, y: 4, width: 14, height: 6, rx: 2, fill: color}, swatch);
      var name = document.createElement("b");
      name.textContent = m.meter;
      item.appendChild(name);
      item.appendChild(document.createTextNode(
        " \u2014 " + counted(amount(m.quantity), "unit") + ", " + counted(amount(m.credits), "credit") + ", " +
        counted(String(m.events), "event")));
      legend.appendChild(item);
    });
  }

  function renderForecast(f) {
    text("burn-rate", amount(cut(f.burnRate.creditsPerDay, 2)) + " / day");
    text("runway", f.runwayDays === null ? "beyond " + (3 * 366) + " days" : amount(f.runwayDays) + " days");
    var depletion = $("depletion");
    depletion.textContent = f.projectedDepletionAt ? when(f.projectedDepletionAt) : "not in sight";
    if (f.projectedDepletionAt) { depletion.setAttribute("data-at", f.projectedDepletionAt); }
    text("projected-usage", amount(cut(f.projectedUsage, 2)));

    var svg = $("forecast-chart");
    var t0 = Date.parse(f.asOf);
    var points = [[t0, parseFloat(f.balance)]];
    f.days.forEach(function (d) {
      points.push([Date.parse(d.date + "T00:00:00Z") + DAY_MS, parseFloat(d.projectedBalance)]);
    });
    var t1 = points[points.length - 1][0];
    var maxY = Math.max.apply(null, points.map(function (p) { return p[1]; }));
    var x = function (t) { return L + (W - L - R) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0); };
    var mid = f.days[Math.floor(f.days.length / 2)];
    var y = frame(svg, maxY, [
      {x: x(t0), text: "now", anchor: "start"},
      {x: x(Date.parse(mid.date + "T12:00:00Z")), text: mid.date},
      {x: x(t1), text: f.days[f.days.length - 1].date, anchor: "end"}
    ]);
    var xy = points.map(function (p) { return [x(p[0]), y(p[1])]; });
    var base = y(0).toFixed(1);
    el("path", {"class": "area", d: pathOf(xy) + " L" + xy[xy.length - 1][0].toFixed(1) + " " + base +
      " L" + xy[0][0].toFixed(1) + " " + base + " Z"}, svg);
    el("path", {id: "forecast-line", "class": "series", d: pathOf(xy), stroke: "#2f6fed",
      "data-points": points.length}, svg);
    f.expiringUnused.forEach(function (e) {
      var t = Date.parse(e.expiresAt);
      if (t < t0 || t > t1) { return; }
      el("line", {"class": "marker expiry", x1: x(t), x2: x(t), y1: T, y2: H - B, "data-card-id": e.cardId}, svg);
      el("text", {"class": "marker-label expiry", x: x(t) + 5, y: H - B - 6}, svg,
        amount(cut(e.credits, 0)) + " expire");
    });
    if (f.projectedDepletionAt) {
      var td = Date.parse(f.projectedDepletionAt);
      if (td >= t0 && td <= t1) {
        var xd = x(td);
        el("line", {id: "depletion-marker", "class": "marker depletion", x1: xd, x2: xd, y1: T, y2: H - B}, svg);
        var right = xd > W - 140;
        el("text", {"class": "marker-label depletion", x: right ? xd - 6 : xd + 6, y: T + 12,
          "text-anchor": right ? "end" : "start"}, svg, "runs out " + day(f.projectedDepletionAt));
      }
    }

    var expiring = $("expiring-unused");
    // a projection: shown to two decimals (cut), the exact figure kept in the attribute and the tooltip
    expiring.textContent = amount(cut(f.creditsExpiringUnused, 2));
    expiring.setAttribute("data-value", f.creditsExpiringUnused);
    expiring.setAttribute("title", f.creditsExpiringUnused);
    var list = $("expiring-list");
    f.expiringUnused.forEach(function (e) {
      var li = document.createElement("li");
      li.setAttribute("data-card-id", e.cardId);
      li.setAttribute("data-credits", e.credits);
      li.textContent = amount(cut(e.credits, 2)) + " credits on " + when(e.expiresAt);
      list.appendChild(li);
    });
    $("expiring-none").hidden = f.expiringUnused.length > 0;

    var rec = $("recommendation");
    var p = f.recommendedPurchase;
    if (p) {
      rec.setAttribute("data-credits", p.credits);
      text("recommended-credits", amount(p.credits));
      text("recommended-price", p.price ? money(p.price) + " (" + amount(p.unitPrice) + " per credit)"
        : "price on request");
      $("buy-recommended").onclick = function () { checkout(p.credits, $("buy-recommended")); };
      $("buy-recommended").hidden = !p.price;
      $("buy-credits").value = p.credits;
      $("recommendation-none").hidden = true;
    } else {
      rec.setAttribute("data-credits", "0");
      $("recommendation-some").hidden = true;
    }
  }

  // -- buying: a live quote from the price book, then the payment provider's checkout page --------------------
  // Every request of the page: the token as a Bearer credential, nothing cached, no cookie, no referrer
  function call(method, path, body) {
    var headers = {"Authorization": "Bearer " + token, "Accept": "application/json"};
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(path, {
      method: method, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer", headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (answer) { return {status: response.status, body: answer}; });
    });
  }
  function problem(answer) {
    var e = answer.body && answer.body.error ? answer.body.error : {};
    return e.message || e.code || ("error " + answer.status);
  }
  var quoting = null;
  function quote() {
    var credits = $("buy-credits").value.trim();
    var shown = $("buy-quote");
    if (!/^[0-9]+(\.[0-9]+)?$/.test(credits) || /^0+(\.0+)?$/.test(credits)) {
      shown.textContent = "enter a number of credits";
      shown.className = "note error-text";
      $("buy").disabled = true;
      return;
    }
    var asked = quoting = credits;
    call("GET", "dashboard/quote?credits=" + encodeURIComponent(credits)).then(function (answer) {
      if (asked !== quoting) { return; }  // the customer typed on: an older answer is not shown
      var ok = answer.status === 200;
      shown.textContent = ok ? money(answer.body.price) + " (" + amount(answer.body.unitPrice) + " per credit)"
        : problem(answer);
      shown.className = ok ? "value" : "note error-text";
      shown.setAttribute("data-amount", ok ? answer.body.price.amount : "");
      $("buy").disabled = !ok;
    });
  }
  function checkout(credits, button) {
    button.disabled = true;
    $("buy-error").textContent = "";
    call("POST", "dashboard/checkout", {credits: credits}).then(function (answer) {
      if (answer.status === 201) { window.location.assign(answer.body.checkoutUrl); return; }
      $("buy-error").textContent = problem(answer);
      button.disabled = false;
    });
  }
  var timer = null;
  $("buy-credits").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(quote, 250);
  });
  $("buy-form").addEventListener("submit", function (event) {
    event.preventDefault();
    checkout($("buy-credits").value.trim(), $("buy"));
  });

  // Back from the checkout page: the card waits for the payment's confirmation, which comes to the backend from
  // the provider; the wallet is read again until no card is pending (or a minute has passed).
  function watchPending(left) {
    call("GET", "dashboard/data").then(function (answer) {
      if (answer.status !== 200) { return; }
      renderSummary(answer.body);
      renderCards(answer.body.wallet.cards, answer.body.forecast.expiringUnused);
      var pending = answer.body.wallet.cards.some(function (c) { return c.status === "pending"; });
      document.body.setAttribute("data-pending", pending ? "yes" : "no");
      if (pending && left > 0) { setTimeout(function () { watchPending(left - 1); }, 1000); }
      else if (!pending) { text("checkout-message", "Payment confirmed: your credits are in the balance."); }
    });
  }
  function showCheckout(outcome) {
    var notice = $("checkout-notice");
    notice.hidden = false;
    notice.setAttribute("data-outcome", outcome);
    if (outcome === "cancel") {
      notice.className = "cancel";
      text("checkout-message", "Checkout cancelled: nothing was charged and nothing was added.");
    } else {
      text("checkout-message", "Payment received. Your credits are added as soon as it is confirmed.");
      watchPending(60);
    }
  }

  function render(data) {
    renderSummary(data);
    renderCards(data.wallet.cards, data.forecast.expiringUnused);
    renderUsage(data.usage);
    renderForecast(data.forecast);
    quote();
    loadCards(false);
    $("content").hidden = false;
    $("loading").hidden = true;
    document.body.setAttribute("data-state", "ready");
  }

  function fail(status, error) {
    var box = $("error");
    box.setAttribute("data-code", error.code || "error");
    box.setAttribute("data-status", String(status));
    text("error-title", status === 401 || status === 403 ? "This link cannot be used" : "Something went wrong");
    text("error-code", (status ? status + " " : "") + (error.code || "error"));
    text("error-message", error.message || "");
    box.hidden = false;
    $("content").hidden = true;
    $("loading").hidden = true;
    document.body.setAttribute("data-state", "error");
  }

  // The link carries the token in its fragment, which no request sends: it stays out of every server's logs. It
  // leaves the address bar and the history at once (a tab's session keeps it, for a reload, until the tab closes).
  var fragment = new URLSearchParams(window.location.hash.slice(1));
  var token = fragment.get("token") || "";
  var outcome = fragment.get("checkout");
  try {
    if (token) { window.sessionStorage.setItem("dashboard-token", token); }
    else { token = window.sessionStorage.getItem("dashboard-token") || ""; }
  } catch (e) { /* storage off: the link works once, as it is */ }
  if (window.location.hash) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  call("GET", "dashboard/data").then(function (answer) {
    if (answer.status === 200) {
      render(answer.body);
      if (outcome === "success" || outcome === "cancel") { showCheckout(outcome); }
    } else { fail(answer.status, answer.body.error || {}); }
  }).catch(function (error) {
    fail(0, {code: "unavailable", message: String(error)});
  });
})();
"""

BODY = """
<header>
  <h1>Credits &middot; <span id="customer"></span></h1>
  <p><span id="as-of"></span> &middot; <span id="link-expiry"></span></p>
</header>
<p id="loading" class="note" role="status">Loading&hellip;</p>
<div id="error" class="error-box" hidden role="alert">
  <h1 id="error-title"></h1>
  <p><code id="error-code"></code></p>
  <p id="error-message"></p>
</div>
<main id="content" hidden>
  <section id="checkout-notice" hidden role="status"><b id="checkout-message"></b></section>
  <section id="summary">
    <h2>Balance</h2>
    <div><span id="balance" class="big"></span><span class="unit">credits</span></div>
    <div class="stats">
      <div class="stat"><span class="label">Usable now</span><span id="available" class="value"></span></div>
      <div class="stat"><span class="label">Overage owed</span><span id="overage" class="value"></span></div>
      <div class="stat"><span class="label">Next expiry</span><span id="next-expiry" class="value"></span></div>
    </div>
    <div id="meters" class="stats" hidden></div>
  </section>
  <section id="recommendation">
    <h2>Recommended purchase</h2>
    <div id="recommendation-some">
      <div><span id="recommended-credits" class="big"></span><span class="unit">credits</span></div>
      <p class="note">for <b id="recommended-price"></b>, to cover the next 30 days at the projected burn rate</p>
      <p><button id="buy-recommended" type="button" hidden>Buy these credits</button></p>
    </div>
    <p id="recommendation-none" class="note">Your credits cover the next 30 days at the projected burn rate.</p>
  </section>
  <section id="buy-section" class="wide">
    <h2>Buy credits</h2>
    <form id="buy-form" class="buy">
      <label for="buy-credits">Credits</label>
      <input id="buy-credits" name="credits" inputmode="decimal" autocomplete="off" value="1000">
      <span id="buy-quote" class="value"></span>
      <button id="buy" type="submit" disabled>Buy</button>
    </form>
    <p id="buy-error" class="note error-text" role="alert"></p>
    <p class="note">Priced by the price book's volume tiers; you pay on the payment provider's page.</p>
  </section>
  <section id="cards-section" class="wide">
    <h2>Credit cards</h2>
    <div class="scroll">
    <table id="cards">
      <thead><tr><th>Source</th><th>Status</th><th class="num">Credits</th><th class="num">Remaining</th>
        <th class="num">Price</th><th>Effective</th><th>Expires</th></tr></thead>
      <tbody></tbody>
    </table>
    </div>
    <p id="cards-empty" class="note" hidden>No live cards.</p>
  </section>
  <section id="all-cards-section" class="wide">
    <h2>All cards &middot; newest first, used up, expired and voided too</h2>
    <div class="scroll">
    <table id="all-cards">
      <thead><tr><th>Status</th><th>Source</th><th class="num">Credits</th><th class="num">Remaining</th>
        <th class="num">Price</th><th>Effective</th><th>Expires</th></tr></thead>
      <tbody></tbody>
    </table>
    </div>
    <p id="all-cards-empty" class="note" hidden>No cards yet.</p>
    <p id="all-cards-error" class="note error-text" role="alert"></p>
    <p><button id="all-cards-more" type="button" hidden>More cards</button></p>
  </section>
  <section id="usage-section" class="wide">
    <h2>Usage per meter &middot; credits per day, last 30 days</h2>
    <svg id="usage-chart" class="chart" viewBox="0 0 900 250" role="img" aria-label="Usage per meter"></svg>
    <ul id="usage-legend" class="legend"></ul>
  </section>
  <section id="forecast-section" class="wide">
    <h2>Forecast &middot; projected balance, next 30 days</h2>
    <div class="stats">
      <div class="stat"><span class="label">Burn rate</span><span id="burn-rate" class="value"></span></div>
      <div class="stat"><span class="label">Runway</span><span id="runway" class="value"></span></div>
      <div class="stat"><span class="label">Projected to run out</span><span id="depletion" class="value"></span></div>
      <div class="stat"><span class="label">Projected usage</span><span id="projected-usage" class="value"></span></div>
    </div>
    <svg id="forecast-chart" class="chart" viewBox="0 0 900 250" role="img" aria-label="Projected balance"></svg>
  </section>
  <section id="expiring-section" class="wide">
    <h2>Credits expiring unused in the next 30 days</h2>
    <div><span id="expiring-unused" class="big"></span><span class="unit">credits</span></div>
    <ul id="expiring-list" class="plain"></ul>
    <p id="expiring-none" class="note">None: every credit is projected to be used before it expires.</p>
  </section>
</main>
"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _document(title: str, body: str, script: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f'<body data-state="loading">\n{body}<script>{script}</script>\n</body>\n</html>\n'
    )


def _policy() -> str:
    return (
        f"default-src 'none'; script-src {_digest(SCRIPT)}; style-src {_digest(STYLE)}; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


PAGE = _document("Credits dashboard", BODY, SCRIPT)
PAGE_POLICY = _policy()
