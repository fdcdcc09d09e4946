// The card designer: edits the design (programs.design.CardDesign) and draws a live
// preview of the front and the back. The saved JSON is validated again on the server.
(function () {
  "use strict";
  const root = document.getElementById("designer");
  const data = JSON.parse(document.getElementById("design-data").textContent);
  const L = data.labels;
  const design = data.design;
  const $ = (id) => document.getElementById(id);
  const assetUrl = (sha) => root.dataset.assets + sha;

  function get(path) { return path.split(".").reduce((o, k) => (o ? o[k] : undefined), design); }
  function set(path, value) {
    const keys = path.split(".");
    let o = design;
    keys.slice(0, -1).forEach((k) => { o = o[k]; });
    o[keys[keys.length - 1]] = value;
  }

  // --- form <-> design ---------------------------------------------------------------------
  document.querySelectorAll("[data-key]").forEach((el) => {
    el.value = get(el.dataset.key) || "";
    el.addEventListener("input", () => { set(el.dataset.key, el.value); render(); });
  });
  const fieldBoxes = Array.from(document.querySelectorAll("#d-fields input"));
  fieldBoxes.forEach((box) => {
    box.checked = design.front_fields.includes(box.value);
    box.addEventListener("change", () => {
      design.front_fields = fieldBoxes.filter((b) => b.checked).map((b) => b.value).slice(0, 6);
      render();
    });
  });

  document.querySelectorAll("[data-image]").forEach((input) => {
    input.addEventListener("change", async () => {
      if (!input.files.length) return;
      const body = new FormData();
      body.append("image", input.files[0]);
      $("design-error").textContent = L.uploading;
      try {
        const r = await fetch("/admin/programs/" + root.dataset.program + "/design/image", {
          method: "POST", body, credentials: "same-origin",
          headers: { "X-CSRF-Token": root.dataset.csrf, Accept: "application/json" },
        });
        const answer = await r.json();
        if (!r.ok) throw new Error(answer.detail || r.statusText);
        design.images[input.dataset.image] = answer.sha256;
        $("design-error").textContent = "";
        render();
      } catch (e) {
        $("design-error").textContent = e.message;
      }
    });
  });
  document.querySelectorAll("[data-clear]").forEach((b) => b.addEventListener("click", () => {
    design.images[b.dataset.clear] = null;
    render();
  }));

  function listEditor(box, items, fields, max) {
    box.innerHTML = "";
    items.forEach((item, i) => {
      const row = document.createElement("div");
      row.className = "row";
      fields.forEach(([key, label, type]) => {
        const wrap = document.createElement("div");
        const input = document.createElement("input");
        input.placeholder = label;
        input.setAttribute("aria-label", label);
        input.value = item[key] == null ? "" : item[key];
        input.addEventListener("input", () => {
          item[key] = type === "number" ? (input.value === "" ? null : Number(input.value)) : input.value;
          render();
        });
        wrap.appendChild(input);
        row.appendChild(wrap);
      });
      const del = document.createElement("button");
      del.type = "button";
      del.className = "link small";
      del.textContent = L.remove;
      del.addEventListener("click", () => { items.splice(i, 1); listEditor(box, items, fields, max); render(); });
      row.appendChild(del);
      box.appendChild(row);
    });
  }
  const linkFields = [["label", L.label], ["url", L.url]];
  const locFields = [["latitude", L.latitude, "number"], ["longitude", L.longitude, "number"], ["relevant_text", L.text]];
  listEditor($("d-links"), design.links, linkFields, 5);
  listEditor($("d-locations"), design.locations, locFields, 10);
  $("add-link").addEventListener("click", () => {
    if (design.links.length < 5) design.links.push({ label: "", url: "https://" });
    listEditor($("d-links"), design.links, linkFields, 5);
  });
  $("add-location").addEventListener("click", () => {
    if (design.locations.length < 10) design.locations.push({ latitude: null, longitude: null, relevant_text: "" });
    listEditor($("d-locations"), design.locations, locFields, 10);
  });
  if ($("our-locations")) $("our-locations").addEventListener("click", () => {
    design.locations.splice(0, design.locations.length, ...data.our_locations.slice(0, 10));
    listEditor($("d-locations"), design.locations, locFields, 10);
    render();
  });

  document.querySelectorAll(".tier-look").forEach((box) => {
    const name = box.dataset.tier;
    const own = box.querySelector(".tier-own");
    const inputs = { background: box.querySelector(".tier-bg"), foreground: box.querySelector(".tier-fg"), label: box.querySelector(".tier-label") };
    const current = design.tiers[name];
    own.checked = !!(current && current.colours);
    Object.entries(inputs).forEach(([k, input]) => {
      if (current && current.colours) input.value = current.colours[k];
      input.addEventListener("input", update);
    });
    own.addEventListener("change", update);
    function update() {
      if (own.checked) {
        design.tiers[name] = Object.assign({}, design.tiers[name] || {}, {
          colours: { background: inputs.background.value, foreground: inputs.foreground.value, label: inputs.label.value },
        });
      } else if (design.tiers[name]) {
        delete design.tiers[name].colours;
        if (!design.tiers[name].strip) delete design.tiers[name];
      }
      render();
    }
  });
  if ($("preview-tier")) $("preview-tier").addEventListener("change", render);

  // --- preview -------------------------------------------------------------------------
  function look() {
    const tier = $("preview-tier") ? $("preview-tier").value : null;
    const o = tier && design.tiers[tier];
    return {
      colours: o && o.colours ? o.colours : design.colours,
      strip: o && o.strip ? o.strip : design.images.strip,
    };
  }

  function render() {
    const { colours, strip } = look();
    const front = $("pv-front");
    front.style.background = colours.background;
    front.style.color = colours.foreground;
    const logo = $("pv-logo");
    logo.hidden = !design.images.logo;
    if (design.images.logo) logo.src = assetUrl(design.images.logo);
    $("pv-logo-text").textContent = design.logo_text || data.program_name;
    const stripEl = $("pv-strip");
    stripEl.style.backgroundImage = strip ? "url(" + assetUrl(strip) + ")" : "none";
    stripEl.style.background = strip ? "" : "rgba(255,255,255,.08)";
    if (strip) stripEl.style.backgroundImage = "url(" + assetUrl(strip) + ")";
    stripEl.textContent = root.dataset.kind === "stamp" && !strip
      ? { cup: "☕", star: "★", circle: "●" }[design.stamp_style || "cup"].repeat(3) + "○○○" : "";
    const fields = $("pv-fields");
    fields.innerHTML = "";
    design.front_fields.forEach((key) => {
      const box = fieldBoxes.find((b) => b.value === key);
      const f = document.createElement("div");
      f.className = "field";
      const k = document.createElement("div");
      k.className = "k";
      k.style.color = colours.label;
      k.textContent = box ? box.dataset.title : key;
      const v = document.createElement("div");
      v.className = "v";
      v.textContent = key === "tier" && $("preview-tier") ? $("preview-tier").value : (data.sample[key] || "");
      f.appendChild(k);
      f.appendChild(v);
      fields.appendChild(f);
    });
    $("pv-barcode").textContent = design.barcode.toUpperCase() + " · 1234567890128";
    const back = $("pv-back-list");
    back.innerHTML = "";
    const add = (title, text) => {
      if (!text) return;
      const dt = document.createElement("dt");
      dt.textContent = title;
      const dd = document.createElement("dd");
      dd.textContent = text;
      back.appendChild(dt);
      back.appendChild(dd);
    };
    add(L.terms, design.terms);
    add(L.address, design.address);
    add(L.phone, design.phone);
    add(L.links, design.links.filter((l) => l.label).map((l) => l.label + ": " + l.url).join("\n"));
    add(L.text, design.locations.filter((l) => l.relevant_text).map((l) => l.relevant_text).join("\n"));
    $("design-json").value = JSON.stringify(design);
  }

  $("design-form").addEventListener("submit", () => { $("design-json").value = JSON.stringify(design); });
  render();
  root.dataset.ready = "1";
})();
