// loyalwallet website widget. Put on any site:
//   <script async src="https://YOUR-HOST/static/enrollment/widget.js" data-program="1"
//           data-channel="website-widget-1"></script>
// Optional: data-label (button text), data-color (#rrggbb), data-lang (ru|en),
// data-inline="1" (show the form in place instead of a floating button).
(function () {
  var script = document.currentScript;
  if (!script) return;
  var origin = new URL(script.src).origin;
  var program = script.getAttribute("data-program");
  if (!/^\d+$/.test(program || "")) return;
  var params = new URLSearchParams({ embed: "1" });
  var channel = script.getAttribute("data-channel");
  if (channel) params.set("channel", channel);
  var lang = script.getAttribute("data-lang");
  if (lang === "ru" || lang === "en") params.set("lang", lang);
  params.set("utm_source", "website");
  params.set("utm_medium", "widget");
  var src = origin + "/join/" + program + "?" + params.toString();
  var color = /^#[0-9a-fA-F]{6}$/.test(script.getAttribute("data-color") || "") ? script.getAttribute("data-color") : "#3b2a20";
  var ru = (lang || document.documentElement.lang || navigator.language || "ru").slice(0, 2) === "ru";
  var label = script.getAttribute("data-label") || (ru ? "Карта гостя" : "Loyalty card");

  function frame(height) {
    var f = document.createElement("iframe");
    f.src = src;
    f.title = label;
    f.setAttribute("loading", "lazy");
    f.style.cssText = "width:100%;height:" + height + ";border:0;display:block;background:#f6f3ee";
    return f;
  }

  if (script.getAttribute("data-inline") === "1") {
    var box = document.createElement("div");
    box.style.cssText = "max-width:480px;margin:0 auto";
    box.appendChild(frame("760px"));
    script.parentNode.insertBefore(box, script.nextSibling);
    return;
  }

  var button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("data-loyalwallet-widget", program);
  button.style.cssText =
    "position:fixed;right:16px;bottom:16px;z-index:2147483000;padding:14px 20px;border:0;border-radius:999px;" +
    "background:" + color + ";color:#fff;font:600 16px system-ui,sans-serif;box-shadow:0 6px 18px rgba(0,0,0,.25);cursor:pointer";
  var overlay = null;
  function close() {
    if (overlay) { overlay.remove(); overlay = null; }
  }
  button.addEventListener("click", function () {
    if (overlay) return;
    overlay = document.createElement("div");
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", label);
    overlay.style.cssText =
      "position:fixed;inset:0;z-index:2147483001;background:rgba(0,0,0,.5);display:flex;align-items:center;justify-content:center";
    var panel = document.createElement("div");
    panel.style.cssText = "position:relative;width:100%;max-width:480px;height:100%;max-height:820px;background:#f6f3ee;border-radius:12px;overflow:hidden";
    var x = document.createElement("button");
    x.type = "button";
    x.textContent = "×";
    x.setAttribute("aria-label", ru ? "Закрыть" : "Close");
    x.style.cssText = "position:absolute;top:6px;right:8px;z-index:1;border:0;background:#fff;border-radius:50%;width:36px;height:36px;font-size:22px;cursor:pointer";
    x.addEventListener("click", close);
    panel.appendChild(x);
    panel.appendChild(frame("100%"));
    overlay.appendChild(panel);
    overlay.addEventListener("click", function (e) { if (e.target === overlay) close(); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
    document.body.appendChild(overlay);
  });
  (document.body || document.documentElement).appendChild(button);
})();
