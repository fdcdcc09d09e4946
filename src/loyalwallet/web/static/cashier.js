// The cashier screen. It calls the same JSON API a POS uses (/api/v1/...), with the staff
// session cookie and the X-CSRF-Token header. Money is handled as integer minor units.
(function () {
  "use strict";
  const root = document.getElementById("cashier");
  const T = JSON.parse(document.getElementById("cashier-i18n").textContent);
  const CSRF = root.dataset.csrf;
  const CURRENCY = root.dataset.currency;
  const CONFIRM_ABOVE = parseInt(root.dataset.confirmAbove || "1000000", 10);
  const $ = (id) => document.getElementById(id);
  const t = (key) => T[key] || key;
  const plurals = new Intl.PluralRules(document.documentElement.lang || "ru");
  // "1 балл", "2 балла", "5 баллов": the word's form for the count (forms from the server).
  const count = (n, key) => n + " " + ((T["count:" + key] || {})[plurals.select(n)] || t(key));

  let card = null;        // the card on screen (API card view)
  let quoteTimer = null;
  let lastQuote = null;
  let saleKey = null;     // Idempotency-Key of the sale being confirmed, and the body it was made for
  let saleBody = null;
  let busy = false;

  // --- helpers -------------------------------------------------------------------------
  function money(minor) {
    const sign = minor < 0 ? "-" : "";
    const abs = Math.abs(minor);
    const units = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
    const symbol = { RUB: "₽", USD: "$", EUR: "€" }[CURRENCY] || CURRENCY;
    return sign + units + "." + String(abs % 100).padStart(2, "0") + "\u00a0" + symbol;
  }
  // "350", "350.5", "350,50" -> 35050; null when not a sum of money. No floats involved.
  function parseMoney(text) {
    const m = String(text || "").trim().replace(/\s/g, "").match(/^(\d{1,9})(?:[.,](\d{1,2}))?$/);
    if (!m) return null;
    return parseInt(m[1], 10) * 100 + (m[2] ? parseInt(m[2].padEnd(2, "0"), 10) : 0);
  }
  function say(text, kind) {
    const el = $("message");
    el.textContent = text || "";
    el.className = "message" + (kind ? " " + kind : "");
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  async function api(method, path, body, headers) {
    const opts = {
      method,
      credentials: "same-origin",
      headers: Object.assign({ Accept: "application/json", "X-CSRF-Token": CSRF }, headers || {}),
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const text = data && (T["err_" + data.code + "_" + data.reason] || T["err_" + data.code] || data.detail);
      const err = new Error(text || r.statusText);
      err.status = r.status;
      err.code = data && data.code;
      throw err;
    }
    return data;
  }
  function looksLikePhone(raw) {
    const s = raw.replace(/[\s()\-]/g, "");
    return /^\+\d{7,15}$/.test(s) || /^[78]\d{10}$/.test(s) || /^9\d{9}$/.test(s);
  }

  // --- finding the card ----------------------------------------------------------------
  async function find(raw) {
    raw = raw.trim();
    if (!raw) return;
    resetSale();
    say(t("Searching…"));
    try {
      if (looksLikePhone(raw)) {
        const found = await api("GET", "/api/v1/cards?phone=" + encodeURIComponent(raw));
        if (found.items.length === 1) return showCard(found.items[0]);
        if (found.items.length > 1) return showChoices(found.items);
        return offerEnroll({ phone: raw }, t("No guest with this phone. Issue a card?"));
      }
      const code = raw.replace(/\s/g, "");
      try {
        showCard(await api("GET", "/api/v1/cards/" + encodeURIComponent(code)));
      } catch (e) {
        if (e.status !== 404) throw e;
        const plastic = await api("GET", "/cashier/plastic?code=" + encodeURIComponent(code)).catch(() => null);
        if (plastic && plastic.program_id) {
          return offerEnroll({ code, program_id: plastic.program_id },
            t("A new plastic card of the program:") + " " + plastic.program_name);
        }
        say(t("No card with this code."), "error");
      }
    } catch (e) {
      say(e.message, "error");
    }
  }

  function showChoices(items) {
    clearGuest();
    const box = $("choices");
    box.innerHTML = "";
    const p = document.createElement("p");
    p.textContent = t("The guest has several cards; choose one:");
    box.appendChild(p);
    items.forEach((c, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choice secondary";
      b.textContent = (i + 1) + ". " + c.program_name + " — " + describe(c);
      b.addEventListener("click", () => showCard(c));
      box.appendChild(b);
    });
    box.hidden = false;
    $("guest-empty").hidden = true;
    say(t("Press 1–9 or tap a card."));
    box.dataset.count = items.length;
    box._items = items;
    box.querySelector("button").focus(); // so 1–9 pick a card instead of typing into the scan box
  }

  // A card with several stamp kinds: "Coffee 1/5 · Pastry 3/4".
  function kindsLine(c) {
    return (c.stamp_kinds || []).map((k) => k.name + " " + k.stamps + "/" + k.stamps_to_collect).join(" · ");
  }

  function describe(c) {
    if (c.program_kind === "bonus") return count(c.points_available, "points");
    if (c.stamp_kinds) return kindsLine(c);
    if (c.program_kind === "stamp") return c.stamps + "/" + count(c.stamps_to_collect, "stamps");
    return (c.tier || "") + (c.discount_pct != null ? " · " + c.discount_pct + "%" : "");
  }

  // After a card is issued: send its link to the guest (SMS or e-mail), as on the admin page.
  function offerSend(c) {
    $("send-box").hidden = !(c && c.status === "active");
  }

  async function sendCard(ev) {
    const channel = ev.target.getAttribute("data-send");
    if (!channel || !card || busy) return;
    busy = true;
    try {
      await api("POST", "/api/v1/cards/" + encodeURIComponent(card.code) + "/send", { channel });
      say(t("The card is on its way."), "ok");
      $("send-box").hidden = true;
    } catch (e) {
      say(e.message, "error");
    } finally {
      busy = false;
    }
  }

  function clearGuest() {
    $("send-box").hidden = true;
    $("choices").hidden = true;
    $("choices")._items = null;
    $("guest-card").hidden = true;
    $("enroll").hidden = true;
    $("guest-empty").hidden = false;
  }

  function showCard(c) {
    card = c;
    clearGuest();
    $("guest-empty").hidden = true;
    $("guest-card").hidden = false;
    const cust = c.customer || {};
    $("g-name").textContent = cust.name || t("Guest");
    $("g-phone").textContent = (cust.phone || "") + " · " + c.code;
    $("g-status").textContent = c.status === "active" ? t("active") : t("blocked");
    $("g-status").className = "pill " + (c.status === "active" ? "ok" : "err");
    $("g-program").textContent = c.program_name;
    $("f-balance").hidden = c.program_kind !== "bonus";
    $("g-balance").textContent = c.points_available + (c.points_pending ? " (+" + c.points_pending + ")" : "");
    $("f-stamps").hidden = c.program_kind !== "stamp";
    // stamps_required = N: N - 1 paid stamps fill the card, the N-th visit is the reward (🎁).
    const cells = c.stamps_to_collect || 0;
    $("g-stamps").textContent = c.stamps + (cells ? " / " + cells : "");
    $("f-tier").hidden = !c.tier;
    $("g-tier").textContent = (c.tier || "") + (c.cashback_pct != null ? " · " + c.cashback_pct + "%" : "")
      + (c.discount_pct != null ? " · −" + c.discount_pct + "%" : "");
    $("g-visits").textContent = c.visits;
    $("g-cups").textContent = c.program_kind === "stamp" && cells
      ? "●".repeat(Math.min(c.stamps, cells)) + "○".repeat(Math.max(0, cells - c.stamps)) + " 🎁"
      : "";
    if (c.stamp_kinds) {
      $("g-stamps").textContent = kindsLine(c);
      $("g-cups").textContent = c.stamp_kinds.map((k) => k.name + " "
        + "●".repeat(Math.min(k.stamps, k.stamps_to_collect))
        + "○".repeat(Math.max(0, k.stamps_to_collect - k.stamps)) + " 🎁").join("\n");
    }
    showKinds(c);
    $("g-next").textContent = c.next_tier
      ? t("Next tier") + ": " + c.next_tier.name + " — " + money(c.next_tier.spend_needed) : "";
    const rewards = $("g-rewards");
    rewards.innerHTML = "";
    (c.rewards || []).forEach((r) => {
      const li = document.createElement("li");
      li.textContent = r.name;
      rewards.appendChild(li);
    });
    if (!c.rewards || !c.rewards.length) rewards.innerHTML = "<li class='muted'>" + t("none") + "</li>";
    $("reward-box").hidden = !(c.rewards && c.rewards.length);
    const reward = c.rewards && c.rewards.length ? c.rewards[0] : null;
    // A free item without check lines takes off the reward's value: say how much.
    $("reward-name").textContent = reward
      ? reward.name + (reward.kind === "free_item" && reward.value ? " (" + t("up to") + " " + money(reward.value) + ")" : "")
      : "";
    if ($("stamp-adjust")) {
      $("stamp-adjust").hidden = c.program_kind !== "stamp";
      $("sa-error").textContent = "";
    }
    $("use-reward").checked = false;
    $("redeem-box").hidden = c.program_kind !== "bonus";
    $("redeem").value = "0";
    const usable = c.status === "active";
    $("amount").disabled = !usable;
    $("redeem").disabled = !usable;
    $("redeem-all").disabled = !usable;
    say(usable ? t("Card found. Enter the check amount.") : t("The card is blocked."), usable ? "ok" : "error");
    loadHistory();
    if (usable) $("amount").focus();
  }

  async function refreshCard() {
    if (!card) return;
    try { showCard(await api("GET", "/api/v1/cards/" + encodeURIComponent(card.code))); } catch (e) { /* keep */ }
  }

  // Two loads may overlap (a sale shows the card and reloads): only the latest one fills
  // the list, and it replaces what is there, so each sale is listed once.
  let historyLoad = 0;
  async function loadHistory() {
    const ul = $("g-history");
    const mine = ++historyLoad;
    if (!card) { ul.innerHTML = ""; return; }
    try {
      const data = await api("GET", "/api/v1/purchases?limit=5&card=" + encodeURIComponent(card.code));
      if (mine !== historyLoad) return;
      ul.innerHTML = "";
      if (!data.items.length) ul.innerHTML = "<li class='muted'>" + t("none") + "</li>";
      data.items.forEach((p) => ul.appendChild(historyItem(p)));
    } catch (e) { /* history is a convenience */ }
  }

  function historyItem(p) {
    const li = document.createElement("li");
    const when = new Date(p.created_at).toLocaleString();
    const span = document.createElement("span");
    span.textContent = when + " · " + money(p.amount) + (p.refunded_amount ? " (" + t("refunded") + " " + money(p.refunded_amount) + ")" : "");
    li.appendChild(span);
    if (p.refundable > 0) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary small refund";
      b.textContent = t("Refund");
      b.dataset.purchase = p.id;
      b.addEventListener("click", () => refund(p));
      li.appendChild(b);
    }
    return li;
  }

  // --- enrolment -----------------------------------------------------------------------
  function offerEnroll(prefill, hint) {
    clearGuest();
    $("guest-empty").hidden = true;
    $("enroll").hidden = false;
    $("enroll-hint").textContent = hint || "";
    $("e-phone").value = prefill.phone || "";
    $("e-code").value = prefill.code || "";
    if (prefill.program_id) $("e-program").value = String(prefill.program_id);
    $("e-program").disabled = !!prefill.code;
    $("e-consent").checked = false;
    $("e-otp").value = "";
    $("e-otp-box").hidden = true;
    enrollToken = null;
    say(hint || "", "");
    // Focus stays in the scan box: the next scan is a scan, never a name or an Enter that
    // issues a card. The cashier taps into the form to fill it.
    $("scan").focus();
  }

  // A new card goes through the guest's SMS code and consent, as on the join page: the
  // first press sends the code, the card is issued only with the code the guest reads out.
  let enrollToken = null;
  async function enroll(ev) {
    ev.preventDefault();
    if (busy) return;
    if (!$("e-consent").checked) {
      say(t("Ask the guest for consent to the processing of personal data, then tick the box."), "error");
      return;
    }
    busy = true;
    $("enroll-btn").disabled = true;
    try {
      const body = { program_id: parseInt($("e-program").value, 10), phone: $("e-phone").value };
      if ($("e-name").value.trim()) body.name = $("e-name").value.trim();
      // A plastic card goes the same way: its number becomes the card's code once the
      // guest has read out the SMS code.
      if ($("e-code").value) body.card_code = $("e-code").value;
      body.personal_data_consent = true;
      const pending = await api("POST", "/api/v1/enrollments", body);
      enrollToken = pending.token;
      $("e-otp-box").hidden = false;
      $("e-otp").value = "";
      say(t("The code was sent to the guest by SMS. Type the code the guest reads out."), "ok");
    } catch (e) {
      say(e.message, "error");
    } finally {
      busy = false;
      $("enroll-btn").disabled = false;
    }
  }

  async function confirmEnroll() {
    if (busy || !enrollToken) return;
    const code = $("e-otp").value.trim();
    if (!/^\d{6}$/.test(code)) {
      say(t("The code has six digits."), "error");
      return;
    }
    busy = true;
    $("e-confirm").disabled = true;
    try {
      const c = await api("POST", "/api/v1/enrollments/" + encodeURIComponent(enrollToken) + "/confirm", { code });
      enrollToken = null;
      showCard(c);
      offerSend(c);
      say(c.created === false ? t("The guest already had this card.") : t("Card issued."), "ok");
    } catch (e) {
      say(e.message, "error");
    } finally {
      busy = false;
      $("e-confirm").disabled = false;
    }
  }

  // --- the sale ------------------------------------------------------------------------
  function lines() {
    const out = [];
    for (const tr of $("lines").querySelectorAll("tr")) {
      const name = tr.querySelector(".l-name").value.trim();
      const price = parseMoney(tr.querySelector(".l-price").value);
      const qty = parseInt(tr.querySelector(".l-qty").value, 10) || 1;
      if (!name && price === null) continue;
      if (price === null) return null;
      const line = { name: name || null, qty, price };
      const cat = tr.querySelector(".l-cat").value.trim();
      if (cat) line.category = cat;
      out.push(line);
    }
    return out;
  }

  // What is wrong with the typed amount (a message at the field), or "" when nothing.
  function amountProblem() {
    const raw = $("amount").value.trim().replace(/\s/g, "");
    if (!raw) return "";
    if (/^-/.test(raw)) return t("The amount cannot be negative.");
    if (/^\d{10,}([.,]\d*)?$/.test(raw)) return t("The amount is too large.");
    const amount = parseMoney(raw);
    if (amount === null) return t("Enter the amount as a number, for example 350 or 350,50.");
    if (amount === 0) return t("The amount must be more than zero.");
    return "";
  }
  function showAmountProblem() {
    const problem = $("lines").querySelector("tr") ? "" : amountProblem();
    $("amount-error").textContent = problem;
    $("amount").setAttribute("aria-invalid", problem ? "true" : "false");
    return problem;
  }

  function body() {
    if (!card) return null;
    const ls = lines();
    if (ls === null) return null;
    let amount = parseMoney($("amount").value);
    if (ls.length) {
      amount = ls.reduce((s, l) => s + l.qty * l.price, 0);
      $("amount").value = (amount / 100).toFixed(2);
    }
    if (!amount) return null;
    const b = { card: card.code, amount };
    const redeem = parseInt($("redeem").value, 10) || 0;
    if (card.program_kind === "bonus" && redeem > 0) b.redeem_points = redeem;
    if (ls.length) b.items = ls;
    if ($("use-reward").checked) b.use_reward = true;
    const hand = Object.keys(byHand).filter((k) => byHand[k] > 0);
    if (card.stamp_kinds && hand.length) {
      b.stamps_by_kind = hand.map((k) => ({ kind: parseInt(k, 10), stamps: byHand[k] }));
    }
    return b;
  }

  // --- several stamp kinds: a button per kind adds its stamps by hand -----------------
  let byHand = {};  // kind number -> stamps the cashier counted for this sale
  function showKinds(c) {
    const box = $("kind-buttons");
    box.innerHTML = "";
    byHand = {};
    $("kinds-box").hidden = !c.stamp_kinds;
    (c.stamp_kinds || []).forEach((k) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary small kind-add";
      b.dataset.kind = String(k.kind);
      b.textContent = "+ " + k.name;
      b.addEventListener("click", () => {
        byHand[k.kind] = (byHand[k.kind] || 0) + 1;
        showHand();
        scheduleQuote();
      });
      box.appendChild(b);
    });
    showHand();
    if ($("sa-kinds")) {
      // Manager corrections of one kind: a pair of buttons per kind.
      const sa = $("sa-kinds");
      sa.innerHTML = "";
      $("sa-add").hidden = $("sa-remove").hidden = !!c.stamp_kinds;
      (c.stamp_kinds || []).forEach((k) => {
        for (const delta of [1, -1]) {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "secondary small";
          b.dataset.kind = String(k.kind);
          b.dataset.delta = String(delta);
          b.textContent = (delta > 0 ? "+1 " : "−1 ") + k.name;
          b.addEventListener("click", () => adjustStamps(delta, k.kind));
          sa.appendChild(b);
        }
      });
    }
  }
  function showHand() {
    const names = {};
    ((card && card.stamp_kinds) || []).forEach((k) => { names[k.kind] = k.name; });
    const parts = Object.keys(byHand).filter((k) => byHand[k] > 0).map((k) => names[k] + " +" + byHand[k]);
    $("kinds-hand").textContent = parts.length ? t("By hand") + ": " + parts.join(" · ") : "";
    $("kinds-clear").hidden = !parts.length;
  }
  function stampsText(p) {
    // Per kind when the card has several: "Coffee +1 · Pastry +2".
    if (!p.stamp_kinds) return null;
    return p.stamp_kinds.map((k) => k.name + " +" + k.stamps_added).join(" · ");
  }

  function scheduleQuote() {
    clearTimeout(quoteTimer);
    $("confirm").disabled = true;
    quoteTimer = setTimeout(quote, 250);
  }

  let quotedBody = null;
  async function quote() {
    const b = body();
    lastQuote = null;
    showAmountProblem();
    if (!b) { $("quote").hidden = true; $("confirm").disabled = true; return; }
    try {
      const q = await api("POST", "/api/v1/purchases/quote", b);
      if (JSON.stringify(b) !== JSON.stringify(body())) return; // typed on meanwhile
      lastQuote = q;
      quotedBody = JSON.stringify(b);
      $("q-amount").textContent = money(q.amount);
      $("q-discount").textContent = money(q.discount);
      $("q-redeemed").textContent = q.points_redeemed + " (" + money(q.redeem_value) + ")";
      $("q-topay").textContent = money(q.to_pay);
      $("q-accrued").textContent = q.points_accrued;
      $("q-stamps").textContent = stampsText(q) || q.stamps_added;
      $("redeem-max").textContent = card.program_kind === "bonus" ? "(" + t("up to") + " " + q.max_redeem_points + ")" : "";
      $("quote").hidden = false;
      $("confirm").disabled = false;
      say("");
    } catch (e) {
      $("quote").hidden = true;
      say(e.message, "error");
    }
  }

  let largeConfirmed = null; // the body a large sale was confirmed a second time for
  async function confirmSale(ev) {
    if (ev) ev.preventDefault();
    if (busy) return;
    if (showAmountProblem()) { $("amount").focus(); return; }
    const b = body();
    if (!b) return;
    if (!lastQuote || JSON.stringify(b) !== quotedBody) {
      // Enter right after typing: the quote is still on its way. Hold the Enter, then go on.
      clearTimeout(quoteTimer);
      await quote();
      if (!lastQuote) return;
    }
    const text0 = JSON.stringify(b);
    if (b.amount > CONFIRM_ABOVE && largeConfirmed !== text0) {
      largeConfirmed = text0;
      say(t("A large sale: press Enter or Confirm once more to record") + " " + money(b.amount) + ".", "warn");
      return;
    }
    // One key per sale: a second click (or a retry after a network error) with the same
    // check reuses it, so the server answers with the first result instead of charging twice.
    const text = JSON.stringify(b);
    if (saleBody !== text) { saleKey = uuid(); saleBody = text; }
    busy = true;
    $("confirm").disabled = true;
    say(t("Recording the sale…"));
    try {
      const p = await api("POST", "/api/v1/purchases", b, { "Idempotency-Key": saleKey });
      showReceipt(p);
      card = p.card;
      resetSale();
      showCard(p.card);
      say(t("Sale recorded.") + " " + t("To pay") + ": " + money(p.to_pay), "ok");
      $("scan").focus();
    } catch (e) {
      say(e.message, "error");
      $("confirm").disabled = false;
    } finally {
      busy = false;
    }
  }

  function showReceipt(p) {
    const r = $("receipt");
    r.hidden = false;
    r.innerHTML = "";
    const h = document.createElement("h3");
    h.textContent = t("Last sale") + " #" + p.id;
    r.appendChild(h);
    const dl = document.createElement("p");
    dl.textContent = t("Check") + " " + money(p.amount) + " · " + t("To pay") + " " + money(p.to_pay)
      + " · " + t("points") + " −" + p.points_redeemed + " / +" + p.points_accrued
      + (stampsText(p) ? " · " + stampsText(p) : p.stamps_added ? " · +" + count(p.stamps_added, "stamps") : "");
    r.appendChild(dl);
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary small refund";
    b.id = "refund-last";
    b.textContent = t("Refund this sale");
    b.addEventListener("click", () => refund({ id: p.id, refundable: p.amount, amount: p.amount }));
    r.appendChild(b);
  }

  // --- refunds: an in-page dialog (no browser prompt) ----------------------------------
  let refunding = null;   // the purchase in the dialog
  let refundKey = null;   // one Idempotency-Key per refund asked, reused on a retry
  let refundBody = null;
  function refund(p) {
    if (busy) return;
    refunding = p;
    refundKey = null;
    refundBody = null;
    $("rd-title").textContent = t("Refund sale") + " #" + p.id;
    $("rd-summary").textContent = t("Check") + " " + money(p.amount) + " · " + t("left to refund") + " " + money(p.refundable);
    $("rd-amount").value = (p.refundable / 100).toFixed(2);
    $("rd-error").textContent = "";
    $("rd-amount").setAttribute("aria-invalid", "false");
    $("rd-ask").hidden = false;
    $("rd-done").hidden = true;
    $("rd-ok").disabled = false;
    $("refund-dialog").showModal();
    $("rd-amount").focus();
    $("rd-amount").select();
  }

  function refundProblem(amount) {
    const raw = $("rd-amount").value.trim();
    if (!raw) return t("Enter the amount to refund.");
    if (/^-/.test(raw)) return t("The amount cannot be negative.");
    if (amount === null) return t("Enter the amount as a number, for example 350 or 350,50.");
    if (amount === 0) return t("The amount must be more than zero.");
    if (amount > refunding.refundable) return t("At most") + " " + money(refunding.refundable) + ".";
    return "";
  }

  async function submitRefund(ev) {
    ev.preventDefault();
    if (busy || !refunding) return;
    const amount = parseMoney($("rd-amount").value);
    const problem = refundProblem(amount);
    $("rd-error").textContent = problem;
    $("rd-amount").setAttribute("aria-invalid", problem ? "true" : "false");
    if (problem) { $("rd-amount").focus(); return; }
    const b = amount === refunding.refundable ? {} : { amount };
    const text = JSON.stringify(b);
    if (refundBody !== text) { refundKey = "refund-" + refunding.id + "-" + uuid(); refundBody = text; }
    busy = true;
    $("rd-ok").disabled = true;
    try {
      const r = await api("POST", "/api/v1/purchases/" + refunding.id + "/refunds", b, { "Idempotency-Key": refundKey });
      showRefunded(r);
      card = r.card;
      showCard(r.card);
      $("receipt").hidden = true;
      say(t("Refunded") + " " + money(r.amount) + refundFigures(r), "ok");
      $("rd-close").focus();
    } catch (e) {
      $("rd-error").textContent = e.message;
      $("rd-ok").disabled = false;
    } finally {
      busy = false;
    }
  }

  function refundFigures(r) {
    let out = "";
    if (r.points_returned) out += " · " + t("points returned") + " " + r.points_returned;
    if (r.points_reversed) out += " · " + t("points taken back") + " " + r.points_reversed;
    if (r.stamps_reversed) out += " · " + t("stamps taken back") + " " + r.stamps_reversed;
    return out;
  }

  function showRefunded(r) {
    $("rd-ask").hidden = true;
    $("rd-done").hidden = false;
    $("rd-r-amount").textContent = money(r.amount);
    $("rd-r-money").textContent = money(r.money_returned);
    const kind = r.card.program_kind;
    $("rd-r-points-box").hidden = kind !== "bonus";
    $("rd-r-reversed-box").hidden = kind !== "bonus";
    $("rd-r-stamps-box").hidden = kind !== "stamp";
    $("rd-r-returned").textContent = String(r.points_returned);
    $("rd-r-reversed").textContent = String(r.points_reversed);
    $("rd-r-stamps").textContent = String(r.stamps_reversed);
    $("rd-r-card").textContent = describe(r.card);
  }

  function closeRefund() {
    $("refund-dialog").close();
  }

  // --- stamp corrections by a manager (through the ledger, audited) ---------------------
  async function adjustStamps(delta, kind) {
    if (busy || !card) return;
    const reason = $("sa-reason").value.trim();
    if (reason.length < 3) {
      $("sa-error").textContent = t("Write the reason (at least 3 characters).");
      $("sa-reason").focus();
      return;
    }
    busy = true;
    $("sa-error").textContent = "";
    try {
      const r = await api("POST", "/api/v1/cards/" + encodeURIComponent(card.code) + "/adjustments",
        kind ? { stamps: delta, stamp_kind: kind, reason } : { stamps: delta, reason });
      $("sa-reason").value = "";
      showCard(r.card);
      say((delta > 0 ? t("Stamp added.") : t("Stamp removed.")) + " " + describe(r.card), "ok");
    } catch (e) {
      $("sa-error").textContent = e.message;
    } finally {
      busy = false;
    }
  }

  function addLine() {
    const tr = document.createElement("tr");
    tr.innerHTML = "<td><input class='l-name'></td><td><input class='l-cat' list='cats'></td>"
      + "<td><input class='l-qty' inputmode='numeric' value='1' size='2'></td>"
      + "<td><input class='l-price' inputmode='decimal' size='6'></td>"
      + "<td><button type='button' class='secondary small l-del'>×</button></td>";
    tr.querySelector(".l-del").addEventListener("click", () => { tr.remove(); scheduleQuote(); });
    tr.querySelectorAll("input").forEach((i) => i.addEventListener("input", scheduleQuote));
    $("lines").appendChild(tr);
    $("lines-box").open = true;
    tr.querySelector(".l-name").focus();
  }

  function resetSale() {
    $("amount").value = "";
    $("redeem").value = "0";
    $("lines").innerHTML = "";
    $("quote").hidden = true;
    $("confirm").disabled = true;
    $("use-reward").checked = false;
    $("redeem-max").textContent = "";
    lastQuote = null;
    saleKey = null;
    saleBody = null;
    quotedBody = null;
    largeConfirmed = null;
    $("amount-error").textContent = "";
    $("amount").setAttribute("aria-invalid", "false");
    byHand = {};
    showHand();
  }

  function newSale() {
    card = null;
    resetSale();
    clearGuest();
    $("receipt").hidden = true;
    $("amount").disabled = true;
    $("redeem").disabled = true;
    $("redeem-all").disabled = true;
    $("scan").value = "";
    say("");
    $("scan").focus();
  }

  // --- camera --------------------------------------------------------------------------
  let stream = null;
  async function openCamera() {
    $("camera").hidden = false;
    const msg = $("camera-msg");
    if (!("BarcodeDetector" in window) || !navigator.mediaDevices) {
      msg.textContent = t("This browser cannot read codes from the camera. Use the scanner or type the code.");
      return;
    }
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      const detector = new window.BarcodeDetector({ formats: formats.filter((f) => ["qr_code", "pdf417", "aztec", "code_128", "ean_13"].includes(f)) });
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      const video = $("camera-video");
      video.srcObject = stream;
      await video.play();
      msg.textContent = t("Point the camera at the card's code.");
      const tick = async () => {
        if (!stream) return;
        try {
          const codes = await detector.detect(video);
          if (codes.length) {
            const value = codes[0].rawValue;
            closeCamera();
            $("scan").value = value;
            find(value);
            return;
          }
        } catch (e) { /* a frame that could not be read */ }
        setTimeout(tick, 200);
      };
      tick();
    } catch (e) {
      msg.textContent = t("The camera is not available:") + " " + e.message;
    }
  }
  function closeCamera() {
    if (stream) stream.getTracks().forEach((tr) => tr.stop());
    stream = null;
    $("camera").hidden = true;
    $("scan").focus();
  }

  // --- wiring --------------------------------------------------------------------------
  $("scan-form").addEventListener("submit", (ev) => { ev.preventDefault(); find($("scan").value); $("scan").select(); });
  $("sale").addEventListener("submit", confirmSale);
  $("enroll").addEventListener("submit", enroll);
  $("e-confirm").addEventListener("click", confirmEnroll);
  $("e-otp").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); confirmEnroll(); }
  });
  $("amount").addEventListener("input", scheduleQuote);
  // A form does not submit on Enter while its button is disabled (the quote is pending):
  // the Enter is taken here and held until the quote is back.
  for (const id of ["amount", "redeem"]) {
    $(id).addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); confirmSale(); }
    });
  }
  $("redeem").addEventListener("input", scheduleQuote);
  $("use-reward").addEventListener("change", scheduleQuote);
  $("redeem-all").addEventListener("click", () => {
    if (!card) return;
    $("redeem").value = lastQuote ? lastQuote.max_redeem_points : card.points_available;
    scheduleQuote();
  });
  $("refund-form").addEventListener("submit", submitRefund);
  $("rd-cancel").addEventListener("click", closeRefund);
  $("rd-close").addEventListener("click", closeRefund);
  $("refund-dialog").addEventListener("close", () => { refunding = null; $("scan").focus(); });
  if ($("sa-add")) {
    $("sa-add").addEventListener("click", () => adjustStamps(1));
    $("sa-remove").addEventListener("click", () => adjustStamps(-1));
  }
  $("add-line").addEventListener("click", addLine);
  $("kinds-clear").addEventListener("click", () => { byHand = {}; showHand(); scheduleQuote(); });
  $("send-box").addEventListener("click", sendCard);
  $("new-sale").addEventListener("click", newSale);
  $("camera-btn").addEventListener("click", openCamera);
  $("camera-close").addEventListener("click", closeCamera);
  document.addEventListener("keydown", (ev) => {
    if ($("refund-dialog").open) return; // the dialog has the keys (Esc closes it)
    if (ev.key === "Escape") { closeCamera(); newSale(); return; }
    const el = document.activeElement;
    const typing = el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
    const items = $("choices")._items;
    if (!typing && items && /^[1-9]$/.test(ev.key) && !$("choices").hidden && items[parseInt(ev.key, 10) - 1]) {
      ev.preventDefault();
      showCard(items[parseInt(ev.key, 10) - 1]);
      return;
    }
    // A scanner types into whatever has focus: when that is not a field, the keystrokes
    // go to the scan box, the first one included, as a new scan (never appended to the
    // code of the previous one).
    if (!typing && ev.key.length === 1 && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      $("scan").focus();
      $("scan").value = ev.key;
    }
  });
  root.dataset.ready = "1";
})();
