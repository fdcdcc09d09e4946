// Program rules form: add and remove tier rows. Without JavaScript the form still works
// (an empty row to fill in, a "Remove" checkbox per row).
(function () {
  "use strict";
  const rows = document.getElementById("tier-rows");
  const template = document.getElementById("tier-template");
  const add = document.getElementById("add-tier");
  if (!rows || !template || !add) return;
  document.querySelectorAll("#rules-form .no-js").forEach((el) => { el.hidden = true; });

  let next = 0;
  rows.querySelectorAll("tr.tier").forEach((tr) => {
    next = Math.max(next, Number(tr.dataset.index) + 1);
  });

  function blank(tr) {
    return Array.from(tr.querySelectorAll("input:not([type=checkbox])")).every((i) => !i.value.trim());
  }

  function wire(tr) {
    const button = tr.querySelector(".remove-tier");
    button.hidden = false;
    button.addEventListener("click", () => {
      const after = tr.nextElementSibling || tr.previousElementSibling;
      tr.remove();
      // Keep the keyboard where it was: the next row's first input, or the add button.
      (after ? after.querySelector("input") : add).focus();
    });
  }

  // The empty row is for the no-JavaScript case; here the add button replaces it.
  rows.querySelectorAll("tr.tier-new").forEach((tr) => {
    if (blank(tr) && rows.querySelectorAll("tr.tier").length > 1) tr.remove();
  });
  rows.querySelectorAll("tr.tier").forEach(wire);

  add.hidden = false;
  add.addEventListener("click", () => {
    const html = template.innerHTML.replace(/__i__/g, String(next++));
    const body = document.createElement("tbody");
    body.innerHTML = html;
    const tr = body.querySelector("tr");
    tr.querySelectorAll(".no-js").forEach((el) => { el.hidden = true; });
    rows.appendChild(tr);
    wire(tr);
    tr.querySelector("input").focus();
  });
  document.getElementById("rules-form").dataset.ready = "1";
})();
