// faceatlas review pages: keyboard review on a person's page. Everything here only enhances
// forms and links that work without it (CSP: script-src 'self', no inline script).
//   j / k  next / previous face card (accepted, then rejected; in page order)
//   x      reject the focused face       r  restore it       t  "this is them"
//   s      tick it for the bulk forms    d  open/close its duplicates
//   ?      help (the "Keyboard: ?" details)   Esc  close the help
(function () {
  "use strict";

  var CARDS = ".face[tabindex]";

  function visible(el) {
    return el.getClientRects().length > 0;  // not inside a closed <details>
  }

  function cards() {
    return Array.prototype.filter.call(document.querySelectorAll(CARDS), visible);
  }

  function current() {
    var el = document.activeElement;
    return el && el.closest ? el.closest(CARDS) : null;
  }

  function show(card) {
    // a card inside a closed reason group: open the group first, or it cannot take focus
    for (var d = card.parentElement; d; d = d.parentElement) {
      if (d.tagName === "DETAILS" && !d.open) d.open = true;
    }
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var list = cards();
    if (!list.length) return;
    var at = list.indexOf(current());
    var next = at < 0 ? (step > 0 ? 0 : list.length - 1)
                      : Math.min(list.length - 1, Math.max(0, at + step));
    show(list[next]);
  }

  function submit(card, selector) {
    if (!card) return;
    var form = card.querySelector(selector);
    if (!form) return;
    var button = form.querySelector("button[type=submit]");
    if (button && button.disabled) return;
    if (form.requestSubmit) form.requestSubmit(button || undefined);
    else form.submit();
  }

  function typing(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    return !/^(checkbox|radio|button|submit|reset)$/i.test(el.type || "");
  }

  function help(open) {
    var box = document.getElementById("kbd-help");
    if (!box) return;
    box.open = open === undefined ? !box.open : open;
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var card = current();
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "x": submit(card, "form.reject-form"); break;
      case "r": submit(card, "form.restore-form"); break;
      case "t": submit(card, "form.reference-form"); break;
      case "s": {
        var box = card && card.querySelector("input[type=checkbox][name=face]");
        if (box && !box.disabled) box.checked = !box.checked;
        break;
      }
      case "d": {
        var dups = card && card.querySelector("details.dups");
        if (dups) dups.open = !dups.open;
        break;
      }
      case "?": help(); break;
      case "Escape": help(false); return;  // let Escape do its usual work too
      default: return;
    }
    e.preventDefault();
  });

  // after a reject or restore the server sends us back to #face-<id>: focus that card
  function focusAnchor() {
    var m = /^#face-(\d+)$/.exec(location.hash);
    if (!m) return;
    var card = document.getElementById("face-" + m[1]);
    if (card && card.matches(CARDS)) show(card);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusAnchor);
  } else {
    focusAnchor();
  }
})();
