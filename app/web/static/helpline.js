// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.getAttribute("data-csrf") || "";
  var idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10) * 1000;
  var signedIn = body.getAttribute("data-signed-in") === "1" && idle > 0;

  function dirtyForm() {
    var forms = document.querySelectorAll("form[data-keep][data-dirty='1']");
    return forms.length ? forms[0] : null;
  }

  // Typing marks a form as holding unsaved text.
  document.addEventListener("input", function (event) {
    var form = event.target && event.target.form;
    if (form && form.hasAttribute("data-keep")) { form.setAttribute("data-dirty", "1"); }
  });

  // Enter in a one-line field never submits a form (the forms also carry a disabled default button,
  // which does the same without JavaScript).
  document.addEventListener("keydown", function (event) {
    var el = event.target;
    if (event.key !== "Enter" || !el || el.tagName !== "INPUT") { return; }
    var type = (el.getAttribute("type") || "text").toLowerCase();
    if (type !== "submit" && type !== "button" && type !== "checkbox" && type !== "radio") { event.preventDefault(); }
  });

  // Focus goes to the first field with a mistake, so a screen reader starts where the work is.
  var firstError = document.querySelector("[aria-invalid='true'], [data-first-error]");
  if (firstError) { firstError.focus(); }

  if (signedIn) {
    var banner = document.getElementById("session-warning");
    var text = banner ? banner.querySelector("p") : null;
    // The page's deadline errs early: the server's idle clock started when it answered, a moment
    // before this ran, and a keep-alive sent after the server's deadline would end the session
    // before the form could be held for its owner.
    var margin = Math.min(5000, idle / 10);
    var deadline = Date.now() + idle - margin;
    var lastPing = Date.now();
    var ended = false;
    var warnBefore = Math.min(60000, idle / 4);
    var pingEvery = Math.min(60000, idle / 3);

    var show = function (message) {
      if (!banner || !text) { return; }
      text.textContent = message;
      banner.hidden = false;
    };
    var end = function () {
      ended = true;
      if (dirtyForm()) {
        // The text stays on the screen; a save now is held on the server until the person signs in again.
        show(banner.getAttribute("data-ended"));
        var stay = banner.querySelector("[data-stay]");
        if (stay) { stay.hidden = true; }
      } else {
        window.location.replace("/login?ended=1");
      }
    };
    // Same origin, CSRF-checked, throttled: resuming the session on the server resets its idle clock.
    var ping = function () {
      if (ended) { return; }
      var started = Date.now();
      if (started >= deadline) { end(); return; }
      lastPing = started;
      var data = new URLSearchParams();
      data.append("csrf_token", csrf);
      window.fetch("/session/keepalive", { method: "POST", body: data, credentials: "same-origin", redirect: "manual" })
        .then(function (response) {
          if (response.status === 204) {
            deadline = started + idle - margin;
            if (banner) { banner.hidden = true; }
          } else {
            end();
          }
        })
        .catch(function () { /* offline: the deadline stands */ });
    };
    document.addEventListener("input", function () {
      if (!ended && Date.now() - lastPing >= pingEvery) { ping(); }
    });
    if (banner) {
      var stayButton = banner.querySelector("[data-stay]");
      if (stayButton) { stayButton.addEventListener("click", ping); }
    }
    window.setInterval(function () {
      if (ended) { return; }
      var left = deadline - Date.now();
      if (left <= 0) { end(); } else if (left <= warnBefore && banner && banner.hidden) { show(banner.getAttribute("data-warn")); }
    }, 1000);

    // "Lock now" takes the open form along, so the server holds it for after the next sign-in.
    var lock = document.querySelector("form.lock");
    if (lock) {
      lock.addEventListener("submit", function () {
        var form = dirtyForm();
        if (!form) { return; }
        var add = function (name, value) {
          var input = document.createElement("input");
          input.type = "hidden"; input.name = name; input.value = value;
          lock.appendChild(input);
        };
        add("keep_action", form.getAttribute("action"));
        new FormData(form).forEach(function (value, name) {
          if (name !== "csrf_token" && typeof value === "string") { add(name, value); }
        });
      });
    }
  }

  // A slow connection must not turn one click into two records.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.getAttribute("data-submitted") === "1") { event.preventDefault(); return; }
    form.setAttribute("data-submitted", "1");
  });
})();
