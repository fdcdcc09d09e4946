// The web card: installable (a service worker keeps it offline) and shareable.
(function () {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/c/sw.js", { scope: "/c/" }).catch(function () {});
  }
  window.addEventListener("beforeinstallprompt", function () {
    var hint = document.querySelector("[data-install]");
    if (hint) hint.hidden = false;
  });
  var share = document.querySelector("[data-share]");
  var field = document.querySelector("[data-share-url]");
  if (share && field) {
    share.addEventListener("click", function () {
      var url = field.value;
      if (navigator.share) {
        navigator.share({ title: share.getAttribute("data-title"), url: url }).catch(function () {});
        return;
      }
      field.select();
      var done = function () { share.textContent = share.getAttribute("data-copied"); };
      if (navigator.clipboard) navigator.clipboard.writeText(url).then(done, function () {});
      else { document.execCommand("copy"); done(); }
    });
  }
})();
