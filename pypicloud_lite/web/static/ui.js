// pypicloud_lite web UI: small progressive enhancements. Every page works without this file.
"use strict";

(function () {
  // -- search as you type: fetch the results fragment, keep the URL shareable --------------
  function liveSearch(form) {
    var input = form.querySelector("input[name=q]");
    var results = document.getElementById("results");
    if (!input || !results) return;
    var timer = null;
    var latest = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var query = input.value.trim();
        var params = new URLSearchParams(query ? { q: query } : {});
        var ticket = ++latest;
        params.set("fragment", "1");
        fetch(form.action + "?" + params.toString(), { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
          .then(function (html) {
            if (ticket !== latest) return; // an answer to an older keystroke
            results.innerHTML = html; // server-rendered and escaped
            params.delete("fragment");
            history.replaceState(null, "", form.action + (query ? "?" + params.toString() : ""));
          })
          .catch(function () { /* the submit button still works */ });
      }, 200);
    });
  }

  // -- copy buttons -------------------------------------------------------------------------
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copyButton(button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    var status = document.getElementById("copy-status");
    if (!source) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(source.textContent.trim()).then(
        function () { if (status) status.textContent = "Copied: " + source.textContent.trim(); },
        function () { if (status) status.textContent = "Select the text and copy it by hand."; }
      );
    });
  }

  // -- reload with live progress ------------------------------------------------------------
  var COUNTS = ["listed", "added", "removed", "changed", "unchanged", "hashed", "failed"];

  function showProgress(data) {
    var progress = data.progress || {};
    var state = document.getElementById("reload-state");
    if (state) state.textContent = (progress.state || "never run") + (progress.error ? ": " + progress.error : "");
    COUNTS.forEach(function (key) {
      var cell = document.getElementById("reload-" + key);
      if (cell && progress[key] !== undefined) cell.textContent = String(progress[key]);
    });
    var line = document.getElementById("reload-line");
    if (line && data.line) line.textContent = data.line;
    var bar = document.getElementById("reload-bar");
    var estimate = data.estimate || {};
    if (bar) {
      if (typeof estimate.percent === "number") bar.value = estimate.percent;
      else bar.removeAttribute("value");  // indeterminate while no total is known
    }
  }

  // The status box (serial, project and file counts) as the server has it now: fetched again after a reload.
  function refreshStatus() {
    var panel = document.getElementById("status-panel");
    if (!panel) return;
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("status-panel");
        if (fresh) panel.replaceWith(fresh);
      })
      .catch(function () { /* the counts stay as they were; a page reload shows them */ });
  }

  function say(text, isError) {
    var message = document.getElementById("reload-message");
    if (!message) return;
    message.hidden = false;
    message.textContent = text;
    message.classList.toggle("error", !!isError);
  }

  function poll(url, button) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        showProgress(data);
        var state = (data.progress || {}).state;
        if (data.running || state === "listing" || state === "filling") {
          setTimeout(function () { poll(url, button); }, 400);
          return;
        }
        button.disabled = false;
        refreshStatus();
        if (state === "failed") say("The reload failed: " + ((data.progress || {}).error || "see the server log"), true);
        else say("Reload finished.", false);
      })
      .catch(function () { setTimeout(function () { poll(url, button); }, 1500); });
  }

  function reloadForm(form) {
    var button = form.querySelector("button");
    var statusUrl = form.getAttribute("data-status-url");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) { return response.json().then(function (body) { return [response.status, body]; }); })
        .then(function (answer) {
          if (answer[0] === 202) {
            say("Reload started…", false);
            poll(statusUrl, button);
          } else {
            button.disabled = false;
            say(answer[1].message || "The reload could not start.", true);
          }
        })
        .catch(function () { button.disabled = false; form.submit(); });
    });
    if (document.getElementById("reload-message") && !document.getElementById("reload-message").hidden) {
      button.disabled = true;
      poll(statusUrl, button);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-live-search]").forEach(liveSearch);
    document.querySelectorAll("button[data-copy]").forEach(copyButton);
    document.querySelectorAll("form[data-reload]").forEach(reloadForm);
  });
})();
