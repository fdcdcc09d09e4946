// "Copy" buttons of the Invite guests page: data-copy names the field to copy. The
// clipboard API needs HTTPS (or localhost); elsewhere the field's text is selected and
// copied the old way, or left selected for Ctrl+C.
(function () {
  "use strict";
  var status = document.getElementById("copy-status");

  function copyOld(field) {
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("[data-copy]") : null;
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    function done(ok) {
      var text = ok ? button.getAttribute("data-done") : button.getAttribute("data-fail");
      button.textContent = text;
      if (status) status.textContent = text;
      if (!ok) field.select();
      window.setTimeout(function () { button.textContent = label; }, 2500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(
        function () { done(true); },
        function () { done(copyOld(field)); }
      );
    } else {
      done(copyOld(field));
    }
  });
})();
