// Passkeys in the pages. A form marked `data-passkey="create"` or
// `data-passkey="get"` is shown only where the browser has WebAuthn; on
// submit this asks the server for options (POST to `data-options`, with the
// form's CSRF field), lets the browser create or use a passkey, puts the
// answer in the form's hidden `challenge_id` and `credential` fields and
// submits the form as usual: the server answers with a page, as for every
// other form. The login page also offers passkeys in the browser's autofill
// (conditional mediation) when the browser can.
"use strict";
(function () {
  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out.buffer;
  }

  function text(buffer) {
    var raw = "";
    new Uint8Array(buffer).forEach(function (b) {
      raw += String.fromCharCode(b);
    });
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The server's JSON options → what navigator.credentials wants.
  function creationOptions(o) {
    o.challenge = bytes(o.challenge);
    o.user.id = bytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) {
      c.id = bytes(c.id);
    });
    return o;
  }

  function requestOptions(o) {
    o.challenge = bytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) {
      c.id = bytes(c.id);
    });
    return o;
  }

  // A PublicKeyCredential → its JSON form (toJSON where the browser has it).
  function answer(credential) {
    if (typeof credential.toJSON === "function") {
      return credential.toJSON();
    }
    var r = credential.response;
    var response = { clientDataJSON: text(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = text(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = text(r.authenticatorData);
      response.signature = text(r.signature);
      response.userHandle = r.userHandle ? text(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: text(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function say(form, message) {
    var status = form.querySelector("[data-passkey-status]");
    if (status) {
      status.textContent = message || "";
    }
  }

  // Options from the server: `{challenge_id, publicKey}`, or a problem
  // (step-up needed: go and come back).
  function options(form) {
    var body = new URLSearchParams();
    body.set("csrf", form.elements.csrf.value);
    if (form.elements.login && form.elements.login.value) {
      body.set("login", form.elements.login.value);
    }
    return fetch(form.getAttribute("data-options"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok) {
          if (json.code === "step_up_required" && form.getAttribute("data-step-up")) {
            window.location.assign(form.getAttribute("data-step-up"));
          }
          throw new Error(json.code || "failed");
        }
        return json;
      });
    });
  }

  function finish(form, ceremony, credential) {
    form.elements.challenge_id.value = ceremony.challenge_id;
    form.elements.credential.value = JSON.stringify(answer(credential));
    form.submit();
  }

  var pending = null; // the autofill request, aborted by a button press

  function run(form, mediation) {
    var create = form.getAttribute("data-passkey") === "create";
    return options(form).then(function (ceremony) {
      var request;
      if (create) {
        request = navigator.credentials.create({ publicKey: creationOptions(ceremony.publicKey) });
      } else {
        var get = { publicKey: requestOptions(ceremony.publicKey) };
        if (mediation) {
          pending = new AbortController();
          get.mediation = mediation;
          get.signal = pending.signal;
        }
        request = navigator.credentials.get(get);
      }
      return request.then(function (credential) {
        if (credential) {
          finish(form, ceremony, credential);
        }
      });
    });
  }

  // Passkeys work only on the relying party's host (or a subdomain): on
  // any other address of this server (say 127.0.0.1) the forms stay hidden.
  function onRelyingParty() {
    var meta = document.querySelector('meta[name="passkey-rp"]');
    var rp = meta ? meta.getAttribute("content") : "";
    var host = window.location.hostname;
    return rp !== "" && (host === rp || host.slice(-(rp.length + 1)) === "." + rp);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.PublicKeyCredential || !navigator.credentials || !onRelyingParty()) {
      return;
    }
    document.querySelectorAll("[data-passkey-needs-script]").forEach(function (note) {
      note.hidden = true;
    });
    document.querySelectorAll("form[data-passkey]").forEach(function (form) {
      form.hidden = false;
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (pending) {
          pending.abort();
          pending = null;
        }
        say(form, "");
        run(form, null).catch(function (error) {
          if (error && error.name !== "AbortError") {
            say(form, form.getAttribute("data-failed"));
          }
        });
      });
      if (form.hasAttribute("data-autofill") && PublicKeyCredential.isConditionalMediationAvailable) {
        PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
          if (available) {
            run(form, "conditional").catch(function () {});
          }
        });
      }
    });
  });
})();
