// The viewer's sign-in page: puts a bearer token in sessionStorage (this tab only), asks the gateway
// what the token grants, lets a researcher with several projects choose one, and opens OHIF, whose
// generated app-config.js sends the token on every DICOMweb request to the chosen project's base.
// No framework, no CDN.
'use strict';
(function () {
  var TOKEN_KEY = 'deid-gateway.token';
  var ROLE_KEY = 'deid-gateway.role';
  // The project OHIF reads (its DICOMweb base is /projects/{project}/dicom-web); '' for the plain base.
  var PROJECT_KEY = 'deid-gateway.project';
  var VIEWER = '/viewer/';
  var params = new URLSearchParams(location.search);
  // viewer.oidc: OHIF signs in through the identity provider; this page only chooses a project for its token.
  var oidc = document.body.dataset.signIn === 'oidc';

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

  var reasons = {
    expired: 'Your token was refused or has expired. Sign in again.',
    forbidden:
      'This token may not read studies here: an uploader only stores, and a researcher reads only a project the token grants. Use a clinician or researcher token.',
    'no-project': 'This researcher token grants no project: research access is per project. Ask the data steward for one.',
    unavailable: 'The gateway could not check this token just now. Try again.',
  };
  function say(reason) {
    var notice = document.getElementById('reason');
    notice.textContent = reasons[reason];
    notice.hidden = false;
  }
  function forget() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ROLE_KEY);
    sessionStorage.removeItem(PROJECT_KEY);
    // The provider's user as OHIF's oidc-client-ts keeps it in this tab (its session at the provider stays).
    Object.keys(sessionStorage).forEach(function (key) {
      if (key.indexOf('oidc.user:') === 0) sessionStorage.removeItem(key);
    });
    document.getElementById('current').hidden = true;
  }
  // The token this tab holds, its role and its project, with a way on (or out).
  function showCurrent() {
    var project = sessionStorage.getItem(PROJECT_KEY);
    document.getElementById('current-role').textContent = sessionStorage.getItem(ROLE_KEY) || 'unknown role';
    document.getElementById('continue').href = next;
    document.getElementById('current-project').textContent = project || '';
    document.getElementById('current-project-line').hidden = !project;
    document.getElementById('current').hidden = false;
  }
  function go(project) {
    sessionStorage.setItem(PROJECT_KEY, project);
    location.assign(next);
  }

  // A researcher with several projects picks one; each button opens OHIF on that project's base.
  function choose(projects) {
    var list = document.getElementById('projects');
    list.textContent = '';
    projects.forEach(function (name) {
      var button = document.createElement('button');
      button.type = 'button';
      button.id = 'project-' + name;
      button.textContent = name;
      button.addEventListener('click', function () {
        go(name);
      });
      list.appendChild(button);
    });
    document.getElementById('choose').hidden = false;
    document.getElementById('choose').scrollIntoView();
  }

  // What the token grants, as the gateway reads it for DICOMweb (GET /viewer/sign-in/access): its
  // role, and a researcher's projects. Not a researcher: the plain base. One project: that project's
  // base. Several: the researcher chooses. None: refused here, before OHIF asks anything.
  function open(token, role) {
    document.getElementById('choose').hidden = true;
    document.getElementById('reason').hidden = true;
    fetch('/viewer/sign-in/access', { headers: { Authorization: 'Bearer ' + token }, credentials: 'omit', cache: 'no-store' })
      .then(function (res) {
        if (res.status === 401) return { refused: 'expired' };
        if (res.status === 403) return { refused: 'forbidden' };
        if (res.status === 404) return { role: '', projects: [] }; // a gateway without the check: the plain base
        if (!res.ok) return { refused: 'unavailable' };
        return res.json();
      })
      .then(function (access) {
        var projects = Array.isArray(access.projects) ? access.projects : [];
        var refused = access.refused || (access.role === 'researcher' && projects.length === 0 ? 'no-project' : '');
        if (refused) {
          if (sessionStorage.getItem(TOKEN_KEY) === token) forget();
          say(refused);
          return;
        }
        sessionStorage.setItem(TOKEN_KEY, token);
        // The gateway's reading of the token first: claim paths and role maps are its business.
        sessionStorage.setItem(ROLE_KEY, access.role || role || rolesOf(token) || 'signed in');
        sessionStorage.removeItem(PROJECT_KEY); // until chosen: the viewer sends the tab back here
        showCurrent();
        if (access.role !== 'researcher') go('');
        else if (projects.length === 1) go(projects[0]);
        else choose(projects);
      })
      .catch(function () {
        say('unavailable');
      });
  }

  if (oidc) {
    document.getElementById('token-form').hidden = true;
    document.getElementById('provider-sign-in').href = next;
    document.getElementById('provider').hidden = false;
  }

  var reason = params.get('reason');
  if (reason && Object.prototype.hasOwnProperty.call(reasons, reason)) say(reason);

  var current = sessionStorage.getItem(TOKEN_KEY);
  if (current) {
    showCurrent();
    // The viewer sends a tab here when no project has been chosen for its token yet.
    if (reason === 'project') open(current, sessionStorage.getItem(ROLE_KEY));
  }
  document.getElementById('sign-out').addEventListener('click', forget);
  document.getElementById('change-project').addEventListener('click', function () {
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (token) open(token, sessionStorage.getItem(ROLE_KEY));
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
