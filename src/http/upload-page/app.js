// The upload page: each file goes as multipart/form-data to POST /upload with the uploader's token,
// one request per file so each shows its own progress and result. No framework, no CDN.
'use strict';
(function () {
  var form = document.getElementById('upload-form');
  var tokenInput = document.getElementById('token');
  var filesInput = document.getElementById('files');
  var folderInput = document.getElementById('folder');
  var button = document.getElementById('send');
  var table = document.getElementById('results');
  var tbody = table.querySelector('tbody');
  var summary = document.getElementById('summary');
  var fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) tokenInput.value = fromHash;

  function row(name) {
    var tr = document.createElement('tr');
    var file = document.createElement('td');
    file.className = 'file';
    file.textContent = name;
    var progressCell = document.createElement('td');
    var progress = document.createElement('progress');
    progress.max = 100;
    progress.value = 0;
    progressCell.appendChild(progress);
    var result = document.createElement('td');
    result.className = 'result';
    result.textContent = 'waiting';
    tr.appendChild(file);
    tr.appendChild(progressCell);
    tr.appendChild(result);
    tbody.appendChild(tr);
    return { tr: tr, progress: progress, result: result };
  }

  function show(r, ok, text, uid) {
    var code;
    r.result.className = 'result ' + (ok ? 'stored' : 'refused');
    r.result.textContent = text;
    r.tr.dataset.outcome = ok ? 'stored' : 'refused';
    if (uid) {
      code = document.createElement('code');
      code.textContent = uid;
      r.result.appendChild(document.createElement('br'));
      r.result.appendChild(code);
      r.tr.dataset.study = uid;
    }
  }

  function send(file, token, r) {
    return new Promise(function (resolve) {
      var data = new FormData();
      data.append('file', file, file.webkitRelativePath || file.name);
      var xhr = new XMLHttpRequest();
      xhr.open('POST', 'upload');
      xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) r.progress.value = Math.round((e.loaded / e.total) * 100);
      };
      xhr.onload = function () {
        r.progress.value = 100;
        var body = null;
        var reason;
        try { body = JSON.parse(xhr.responseText); } catch (_e) { body = null; }
        var item = body && body.files && body.files[0];
        if (xhr.status === 200 && item && item.outcome === 'stored') {
          show(r, true, 'stored, pseudonymous study', item.studyInstanceUID);
          resolve(true);
        } else {
          reason = item ? item.reason : (body && body.error ? body.error.message : 'HTTP ' + xhr.status);
          show(r, false, 'refused: ' + reason);
          // Withheld by the pixel policy (issue 16): the row says so apart from other refusals.
          if (item && item.withheld) r.tr.dataset.withheld = item.withheld.reason;
          resolve(false);
        }
      };
      xhr.onerror = function () {
        show(r, false, 'refused: the gateway could not be reached');
        resolve(false);
      };
      xhr.send(data);
    });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var token = tokenInput.value.trim();
    var files = Array.prototype.slice.call(filesInput.files).concat(Array.prototype.slice.call(folderInput.files));
    if (!token || files.length === 0) {
      summary.textContent = 'Paste a token and pick files or a folder.';
      return;
    }
    button.disabled = true;
    table.hidden = false;
    tbody.textContent = '';
    var rows = files.map(function (f) { return row(f.webkitRelativePath || f.name); });
    var stored = 0;
    var i = 0;
    summary.textContent = 'Uploading ' + files.length + ' file(s)…';
    (function next() {
      if (i === files.length) {
        summary.textContent = 'Done: ' + stored + ' stored, ' + (files.length - stored) + ' refused.';
        document.body.dataset.done = 'true';
        button.disabled = false;
        return;
      }
      var k = i++;
      send(files[k], token, rows[k]).then(function (ok) {
        if (ok) stored++;
        next();
      });
    })();
  });
})();
