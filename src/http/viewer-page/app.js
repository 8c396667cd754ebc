// The viewer's sign-in page: puts a bearer token in sessionStorage (this tab only) and opens OHIF,
// whose generated app-config.js sends it on every DICOMweb request. No framework, no CDN.
'use strict';
(function () {
  var TOKEN_KEY = 'deid-gateway.token';
  var ROLE_KEY = 'deid-gateway.role';
  var VIEWER = '/viewer/';
  var params = new URLSearchParams(location.search);

  // Only a path inside the viewer: never an open redirect to another origin.
  var next = params.get('next');
  if (!next || !/^\/viewer(\/[^\\]*)?$/.test(next) || next.indexOf('//') >= 0 || next.indexOf('/viewer/sign-in') === 0) next = VIEWER;

  // The roles claim, for display only: the gateway verifies the token and decides.
  function rolesOf(token) {
    var payload;
    var roles;
    try {
      payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      roles = payload.roles;
      return Array.isArray(roles) ? roles.join(', ') : typeof roles === 'string' ? roles : '';
    } catch (_e) {
      return '';
    }
  }

  function open(token, role) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(ROLE_KEY, role || rolesOf(token) || 'signed in');
    location.assign(next);
  }

  var reasons = {
    expired: 'Your token was refused or has expired. Sign in again.',
    forbidden: "This token's role may not read studies (an uploader only stores). Use a clinician or researcher token.",
  };
  var reason = params.get('reason');
  var notice;
  if (reason && Object.prototype.hasOwnProperty.call(reasons, reason)) {
    notice = document.getElementById('reason');
    notice.textContent = reasons[reason];
    notice.hidden = false;
  }

  var current = sessionStorage.getItem(TOKEN_KEY);
  if (current) {
    document.getElementById('current-role').textContent = sessionStorage.getItem(ROLE_KEY) || 'unknown role';
    document.getElementById('continue').href = next;
    document.getElementById('current').hidden = false;
  }
  document.getElementById('sign-out').addEventListener('click', function () {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ROLE_KEY);
    document.getElementById('current').hidden = true;
  });

  document.getElementById('token-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var token = document.getElementById('token').value.trim().replace(/^Bearer\s+/i, '');
    if (token) open(token, '');
  });

  // In `deid-gateway demo` only, the gateway offers its demo tokens; elsewhere this answers 404.
  fetch('/viewer/sign-in/demo-tokens.json', { credentials: 'same-origin', cache: 'no-store' })
    .then(function (res) {
      return res.ok ? res.json() : null;
    })
    .then(function (tokens) {
      if (!tokens) return;
      var box = document.getElementById('roles');
      Object.keys(tokens).forEach(function (role) {
        var button = document.createElement('button');
        button.type = 'button';
        button.id = 'role-' + role;
        button.textContent = 'Open as ' + role;
        button.addEventListener('click', function () {
          open(tokens[role], role);
        });
        box.appendChild(button);
      });
      document.getElementById('demo').hidden = false;
      document.body.dataset.demo = 'true';
    })
    .catch(function () {});
})();
