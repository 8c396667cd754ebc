// The steward's page: a thin client of the steward's JSON API (GET/POST /projects…, POST /withdrawals,
// POST /reidentify, GET /audit). The token stays in this tab (sessionStorage) and goes only to this gateway, on each
// call as `Authorization: Bearer`. Text from the API is only ever set as textContent. No framework, no CDN.
'use strict';
(function () {
  var TOKEN_KEY = 'deid-gateway.steward-token';
  var PAGE = 100;
  var $ = function (id) { return document.getElementById(id); };
  var status = $('status');
  var current = null; // the project shown in the detail section
  var offset = 0;

  var fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname + location.search); // the token leaves the address bar
  }
  $('token').value = sessionStorage.getItem(TOKEN_KEY) || '';

  function say(text, ok) {
    status.textContent = text;
    status.className = ok === false ? 'error' : ok ? 'ok' : '';
  }

  function token() {
    return ($('token').value || '').trim().replace(/^Bearer\s+/i, '');
  }

  // One API call: JSON in and out; an error answer becomes a rejection with the gateway's code and message.
  function api(method, path, body) {
    var headers = { Authorization: 'Bearer ' + token() };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' })
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (json) {
          if (res.ok) return json;
          var e = json && json.error ? json.error : { code: 'HTTP_' + res.status, message: 'HTTP ' + res.status };
          throw new Error(e.code + ': ' + e.message);
        });
      });
  }

  function fail(error) {
    say(String(error && error.message ? error.message : error), false);
  }

  function cell(tr, text, className) {
    var td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function membershipText(p) {
    var parts = [];
    if (p.membership.all) parts.push('every study');
    if (p.membership.query) {
      parts.push('query ' + Object.keys(p.membership.query).map(function (k) { return k + '=' + p.membership.query[k]; }).join(', '));
    }
    if (!p.membership.all) parts.push('listed studies');
    return parts.join(' + ');
  }

  function lines(text) {
    return text.split(/\r?\n/).map(function (l) { return l.trim(); }).filter(Boolean);
  }

  function loadProjects() {
    return api('GET', 'projects').then(function (answer) {
      var tbody = $('projects').querySelector('tbody');
      tbody.textContent = '';
      answer.projects.forEach(function (p) {
        var tr = document.createElement('tr');
        tr.dataset.project = p.name;
        cell(tr, p.name, 'mono');
        cell(tr, p.description);
        cell(tr, membershipText(p) + (p.profile ? ' · own profile' : ''));
        cell(tr, String(p.studyCount)).dataset.count = String(p.studyCount);
        cell(tr, p.createdAt.slice(0, 10));
        var open = document.createElement('button');
        open.type = 'button';
        open.className = 'secondary';
        open.textContent = 'Open';
        open.addEventListener('click', function () { show(p.name, 0).catch(fail); });
        cell(tr, '').appendChild(open);
        tbody.appendChild(tr);
      });
      document.body.dataset.projects = String(answer.projects.length);
      scopes(answer.projects.map(function (p) { return p.name; }));
      return answer.projects;
    });
  }

  function show(name, from) {
    return api('GET', 'projects/' + encodeURIComponent(name) + '?limit=' + PAGE + '&offset=' + from).then(function (p) {
      current = p;
      offset = from;
      $('detail').hidden = false;
      $('detail-name').textContent = p.name;
      $('detail-summary').textContent =
        (p.description ? p.description + ' · ' : '') + membershipText(p) + ' · ' + p.studyCount + ' listed · profile: ' +
        (p.profile ? (p.profile.options.join(', ') || 'Basic Profile only') : 'the configured researcher profile');
      var tbody = $('studies').querySelector('tbody');
      tbody.textContent = '';
      p.studies.forEach(function (uid) {
        var tr = document.createElement('tr');
        tr.dataset.study = uid;
        cell(tr, uid, 'mono');
        var remove = document.createElement('button');
        remove.type = 'button';
        remove.className = 'danger small';
        remove.textContent = 'Remove';
        remove.addEventListener('click', function () { change({ remove: [uid] }); });
        cell(tr, '').appendChild(remove);
        tbody.appendChild(tr);
      });
      $('page').textContent = p.studyCount === 0 ? 'no listed studies' : (from + 1) + '–' + (from + p.studies.length) + ' of ' + p.studyCount;
      $('prev').disabled = from === 0;
      $('next').disabled = from + p.studies.length >= p.studyCount;
      $('change-form').hidden = p.membership.all;
    });
  }

  function change(body) {
    if (!current) return;
    api('POST', 'projects/' + encodeURIComponent(current.name) + '/studies', body)
      .then(function (r) {
        say(r.added + ' added, ' + r.removed + ' removed; ' + r.studyCount + ' listed now.', true);
        $('change-uids').value = '';
        return Promise.all([show(current.name, offset), loadProjects()]);
      })
      .catch(fail);
  }

  $('token-form').addEventListener('submit', function (event) {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, token());
    loadProjects().then(function (list) { say(list.length + ' project(s).', true); }).catch(fail);
  });

  $('refresh').addEventListener('click', function () {
    loadProjects().then(function (list) { say(list.length + ' project(s).', true); }).catch(fail);
  });

  $('create-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var membership = {};
    if ($('new-all').checked) membership.all = true;
    var query = {};
    var bad = null;
    lines($('new-query').value).forEach(function (l) {
      var at = l.indexOf('=');
      if (at < 1) bad = 'Each query line is Keyword=value.';
      else query[l.slice(0, at).trim()] = l.slice(at + 1).trim();
    });
    if (bad) return say(bad, false);
    if (Object.keys(query).length > 0) membership.query = query;
    var studies = lines($('new-studies').value);
    if (studies.length > 0) membership.studies = studies;
    var body = { name: $('new-name').value.trim(), membership: membership };
    var description = $('new-description').value.trim();
    if (description) body.description = description;
    var options = $('new-options').value.split(',').map(function (o) { return o.trim(); }).filter(Boolean);
    if (options.length > 0) body.profile = { options: options, overrides: {} };
    api('POST', 'projects', body)
      .then(function (p) {
        say('Project ' + p.name + ' created with ' + p.studyCount + ' listed studies.', true);
        $('create-form').reset();
        return Promise.all([loadProjects(), show(p.name, 0)]);
      })
      .catch(fail);
  });

  $('prev').addEventListener('click', function () { if (current) show(current.name, Math.max(0, offset - PAGE)).catch(fail); });
  $('next').addEventListener('click', function () { if (current) show(current.name, offset + PAGE).catch(fail); });

  $('change-form').addEventListener('submit', function (event) {
    event.preventDefault();
    change({ add: lines($('change-uids').value) });
  });
  $('remove').addEventListener('click', function () {
    change({ remove: lines($('change-uids').value) });
  });

  $('withdraw-form').addEventListener('submit', function (event) {
    event.preventDefault();
    if (!current) return;
    var kind = $('withdraw-kind').value;
    var value = $('withdraw-value').value;
    var everywhere = $('withdraw-everywhere').checked;
    var body = {};
    body[kind] = value;
    if (everywhere && kind === 'pseudonym') body.project = current.name;
    var path = everywhere ? 'withdrawals' : 'projects/' + encodeURIComponent(current.name) + '/withdrawals';
    if (!confirm('Withdraw this patient ' + (everywhere ? 'from every project' : 'from ' + current.name) + '? Their studies disappear from researchers at once.')) return;
    api('POST', path, body)
      .then(function (r) {
        $('withdraw-value').value = '';
        say(r.alreadyWithdrawn ? 'The patient had already withdrawn.' : 'Withdrawn ' + (everywhere ? 'from every project.' : 'from ' + current.name + '.'), true);
      })
      .catch(fail);
  });

  // One pseudonym back to its original, in a project's scope or the uploads'; the API records it first.
  function reidentify(scope, kind, pseudonym, out) {
    out.textContent = '';
    var body = scope === 'uploads' ? { uploads: true } : { project: scope };
    body.kind = kind;
    body.pseudonym = pseudonym;
    return api('POST', 'reidentify', body)
      .then(function (r) {
        var code = document.createElement('code');
        code.textContent = r.original;
        out.textContent = 'Original: ';
        out.appendChild(code);
        say('Re-identified (recorded on the audit trail).', true);
      })
      .catch(function (error) {
        out.textContent = 'No original shown.';
        fail(error);
      });
  }

  $('reidentify-form').addEventListener('submit', function (event) {
    event.preventDefault();
    if (!current) return;
    reidentify(current.name, $('reidentify-kind').value, $('reidentify-value').value.trim(), $('reidentify-result'));
  });

  // The lookup's scopes: every project, then the uploads; the choice survives a reload of the list.
  function scopes(names) {
    var select = $('lookup-scope');
    var chosen = select.value;
    select.textContent = '';
    names.concat(['uploads']).forEach(function (name) {
      var option = document.createElement('option');
      option.value = name;
      option.textContent = name === 'uploads' ? 'the uploads' : 'project ' + name;
      select.appendChild(option);
    });
    if (chosen && names.concat(['uploads']).indexOf(chosen) >= 0) select.value = chosen;
  }

  // A pseudonym's shape says what it is: dots make a UID; a keyed code (16 of A–Z, 2–7) is not one.
  $('lookup-value').addEventListener('input', function () {
    var v = $('lookup-value').value.trim();
    if (/^\d+(\.\d+)+$/.test(v)) $('lookup-kind').value = 'uid';
    else if (/^[A-Z2-7]{16}$/.test(v) && $('lookup-kind').value === 'uid') $('lookup-kind').value = 'patientId';
  });

  $('lookup-form').addEventListener('submit', function (event) {
    event.preventDefault();
    reidentify($('lookup-scope').value, $('lookup-kind').value, $('lookup-value').value.trim(), $('lookup-result'));
  });

  // The audit trail, a page at a time: `pages` holds the cursor (`after`) of each page shown so far.
  var OUTCOME = { 0: 'success', 4: 'minor failure', 8: 'serious failure', 12: 'major failure' };
  var ACTION = { C: 'create', R: 'read', U: 'update', D: 'delete', E: 'execute' };
  var pages = [];
  var nextCursor = null;

  function auditQuery(after) {
    var q = new URLSearchParams();
    [['user', 'audit-user'], ['object', 'audit-object'], ['project', 'audit-project'], ['role', 'audit-role'], ['event', 'audit-event'], ['outcome', 'audit-outcome']]
      .forEach(function (f) {
        var v = $(f[1]).value.trim();
        if (v) q.set(f[0], v);
      });
    [['since', 'audit-since'], ['until', 'audit-until']].forEach(function (f) {
      var v = $(f[1]).value;
      if (v && !Number.isNaN(new Date(v).getTime())) q.set(f[0], new Date(v).toISOString());
    });
    q.set('order', $('audit-order').value);
    q.set('limit', $('audit-limit').value);
    if (after) q.set('after', after);
    return q.toString();
  }

  function loadAudit() {
    var after = pages[pages.length - 1];
    return api('GET', 'audit?' + auditQuery(after)).then(function (answer) {
      var tbody = $('audit').querySelector('tbody');
      tbody.textContent = '';
      answer.events.forEach(function (e) {
        var tr = document.createElement('tr');
        tr.dataset.id = e.id;
        cell(tr, e.eventDateTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), 'mono');
        cell(tr, e.userId, 'mono');
        cell(tr, e.roleId);
        cell(tr, (e.eventTypeCode ? e.eventTypeCode.meaning : e.eventId.meaning) + ' (' + (ACTION[e.eventActionCode] || e.eventActionCode) + ')');
        cell(tr, e.route, 'mono');
        cell(tr, (OUTCOME[e.eventOutcomeIndicator] || String(e.eventOutcomeIndicator)) + ' · ' + e.httpStatus, 'outcome-' + e.eventOutcomeIndicator);
        cell(tr, e.participantObjectId || '', 'mono');
        cell(tr, e.project || '');
        tbody.appendChild(tr);
      });
      nextCursor = answer.next || null;
      $('audit-next').disabled = !nextCursor;
      $('audit-prev').disabled = pages.length <= 1;
      $('audit-first').disabled = pages.length <= 1;
      $('audit-page').textContent = 'Page ' + pages.length + ' · ' + answer.events.length + ' record(s)';
      $('audit-caption').textContent = answer.events.length === 0 ? 'No record matches.' : 'The records that match, ' + ($('audit-order').value === 'desc' ? 'newest' : 'oldest') + ' first.';
      document.body.dataset.auditPage = String(pages.length);
      say('Audit trail: page ' + pages.length + ', ' + answer.events.length + ' record(s).', true);
    });
  }

  $('audit-form').addEventListener('submit', function (event) {
    event.preventDefault();
    pages = [null];
    loadAudit().catch(fail);
  });
  $('audit-next').addEventListener('click', function () {
    if (!nextCursor) return;
    pages.push(nextCursor);
    loadAudit().catch(function (error) {
      pages.pop();
      fail(error);
    });
  });
  $('audit-prev').addEventListener('click', function () {
    if (pages.length <= 1) return;
    pages.pop();
    loadAudit().catch(fail);
  });
  $('audit-first').addEventListener('click', function () {
    pages = [null];
    loadAudit().catch(fail);
  });

  // In `deid-gateway demo` only, the gateway offers its steward token; elsewhere this answers 404.
  fetch('steward/demo-token.json', { credentials: 'same-origin', cache: 'no-store' })
    .then(function (res) { return res.ok ? res.json() : null; })
    .then(function (demo) {
      if (!demo || !demo.token) return;
      var button = $('demo-token');
      button.hidden = false;
      button.addEventListener('click', function () {
        $('token').value = demo.token;
        sessionStorage.setItem(TOKEN_KEY, demo.token);
        loadProjects().then(function (list) { say(list.length + ' project(s).', true); }).catch(fail);
      });
    })
    .catch(function () {});

  if (token()) loadProjects().then(function (list) { say(list.length + ' project(s).', true); }).catch(fail);
})();
