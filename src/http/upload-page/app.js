// The upload page. 1. Review: every picked file is parsed here (dicom.js) and grouped by series; each
// series shows a frame decoded in the browser, the regions the gateway proposes (POST upload/preview:
// rule rectangles and OCR text regions, nothing stored) and the de-identified header it will store. The
// user blacks out rectangles with the mouse or the form. 2. Confirm: each file goes as multipart/form-data
// to POST upload with its rectangles in the `redactions` field (sent before the file), one request per
// file so each shows its own progress and result. Cancel discards everything. No framework, no CDN.
'use strict';
(function () {
  const form = document.getElementById('upload-form');
  const tokenInput = document.getElementById('token');
  const filesInput = document.getElementById('files');
  const folderInput = document.getElementById('folder');
  const reviewButton = document.getElementById('send');
  const review = document.getElementById('review');
  const seriesList = document.getElementById('series-list');
  const confirmButton = document.getElementById('confirm');
  const cancelButton = document.getElementById('cancel');
  const table = document.getElementById('results');
  const tbody = table.querySelector('tbody');
  const summary = document.getElementById('summary');
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) tokenInput.value = fromHash;

  /** The review in progress: { token, files: [...], series: [...], requests: [xhr…], cancelled }. */
  let current = null;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') node.textContent = attrs[k];
      else if (k === 'className') node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function describe(r) { return 'x ' + r.x + ', y ' + r.y + ', ' + r.width + ' × ' + r.height; }

  // --- requests -----------------------------------------------------------------------------------

  function request(url, data, token, onProgress) {
    const xhr = new XMLHttpRequest();
    const done = new Promise(function (resolve) {
      xhr.open('POST', url);
      xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      if (onProgress) {
        xhr.upload.onprogress = function (e) {
          if (e.lengthComputable) onProgress(Math.round((e.loaded / e.total) * 100));
        };
      }
      xhr.onload = function () {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_e) { body = null; }
        resolve({ status: xhr.status, body: body });
      };
      xhr.onerror = function () { resolve({ status: 0, body: null }); };
      xhr.onabort = function () { resolve({ status: 0, body: null, aborted: true }); };
      xhr.send(data);
    });
    if (current) current.requests.push(xhr);
    return done;
  }

  function errorText(res) {
    if (res.status === 0) return 'the gateway could not be reached';
    return res.body && res.body.error ? res.body.error.message + ' (' + res.body.error.code + ')' : 'HTTP ' + res.status;
  }

  // --- review -------------------------------------------------------------------------------------

  function readFile(file) {
    return file.arrayBuffer().then(function (buffer) {
      try {
        return { parsed: window.DeidDicom.parse(buffer) };
      } catch (e) {
        return { error: e.message };
      }
    });
  }

  function startReview(token, files) {
    current = { token: token, files: [], series: [], requests: [], cancelled: false };
    const review0 = current;
    seriesList.textContent = '';
    table.hidden = true;
    tbody.textContent = '';
    delete document.body.dataset.done;
    delete document.body.dataset.cancelled;
    summary.textContent = 'Reading ' + files.length + ' file(s)…';
    return Promise.all(files.map(readFile)).then(function (results) {
      if (current !== review0) return;
      const byUid = {};
      results.forEach(function (r, i) {
        const entry = { file: files[i], name: files[i].webkitRelativePath || files[i].name, parsed: r.parsed, error: r.error, rects: [], preview: null };
        current.files.push(entry);
        const uid = r.parsed && r.parsed.attributes.SeriesInstanceUID;
        const key = uid || 'file:' + i;
        if (!byUid[key]) {
          byUid[key] = { uid: uid || null, files: [], rects: [], shown: 0, frame: 0, image: null, proposals: [], editing: null };
          current.series.push(byUid[key]);
        }
        entry.series = byUid[key];
        byUid[key].files.push(entry);
      });
      current.series.forEach(function (s, i) { renderSeries(s, i); });
      review.hidden = false;
      confirmButton.disabled = false;
      summary.textContent = 'Review ' + current.series.length + ' series (' + files.length + ' file(s)), then confirm or cancel.';
      document.body.dataset.review = 'ready';
    });
  }

  function renderSeries(s, index) {
    const id = 's' + index;
    const section = el('section', { className: 'series', 'aria-labelledby': id + '-title', 'data-series': s.uid || '' });
    section.appendChild(el('h3', { id: id + '-title', text: 'Series ' + (index + 1) + (s.uid ? ' · ' + s.uid : '') + ' · ' + s.files.length + ' file(s)' }));

    const controls = el('div', { className: 'frame-controls' });
    const instance = el('select', { id: id + '-instance' });
    s.files.forEach(function (f, k) { instance.appendChild(el('option', { value: String(k), text: f.name })); });
    controls.appendChild(el('label', { for: id + '-instance', text: 'Instance' }));
    controls.appendChild(instance);
    const frameInput = el('input', { id: id + '-frame', type: 'number', min: '1', value: '1', step: '1' });
    controls.appendChild(el('label', { for: id + '-frame', text: 'Frame' }));
    controls.appendChild(frameInput);
    const showButton = el('button', { type: 'button', className: 'secondary', text: 'Show frame' });
    controls.appendChild(showButton);
    section.appendChild(controls);

    const canvas = el('canvas', { className: 'preview', role: 'img', width: '1', height: '1' });
    const note = el('p', { className: 'note', role: 'status' });
    section.appendChild(canvas);
    section.appendChild(note);

    // The keyboard form for rectangles.
    const fieldset = el('fieldset', { className: 'rect-form' });
    fieldset.appendChild(el('legend', { text: 'Black out a rectangle (image pixels)' }));
    const scope = el('select', { id: id + '-scope' });
    scope.appendChild(el('option', { value: 'series', text: 'every instance of this series' }));
    scope.appendChild(el('option', { value: 'instance', text: 'this instance only' }));
    fieldset.appendChild(el('label', { for: id + '-scope', text: 'Applies to' }));
    fieldset.appendChild(scope);
    const inputs = {};
    ['x', 'y', 'width', 'height'].forEach(function (k) {
      inputs[k] = el('input', { id: id + '-' + k, type: 'number', min: k === 'x' || k === 'y' ? '0' : '1', step: '1', required: 'required' });
      fieldset.appendChild(el('label', { for: id + '-' + k, text: k === 'x' ? 'x (column)' : k === 'y' ? 'y (row)' : k }));
      fieldset.appendChild(inputs[k]);
    });
    const addButton = el('button', { type: 'button', id: id + '-add', text: 'Add rectangle' });
    const stopEdit = el('button', { type: 'button', className: 'secondary', text: 'Stop editing', hidden: 'hidden' });
    fieldset.appendChild(addButton);
    fieldset.appendChild(stopEdit);
    const formError = el('p', { className: 'error', role: 'alert' });
    fieldset.appendChild(formError);
    section.appendChild(fieldset);

    section.appendChild(el('h4', { text: 'Rectangles to black out' }));
    const rectList = el('ul', { className: 'rects', 'aria-live': 'polite' });
    section.appendChild(rectList);
    section.appendChild(el('h4', { text: 'Proposed regions' }));
    const proposalList = el('ul', { className: 'proposals' });
    section.appendChild(proposalList);
    const ocrNote = el('p', { className: 'note' });
    section.appendChild(ocrNote);
    const details = el('details', { open: 'open' });
    details.appendChild(el('summary', { text: 'De-identified header that will be stored' }));
    details.appendChild(el('p', { className: 'note', text: 'With rectangles blacked out, the stored instance also says Burned In Annotation NO and lists Clean Pixel Data among its de-identification methods.' }));
    const headerTable = el('table', { className: 'header' });
    details.appendChild(headerTable);
    section.appendChild(details);
    seriesList.appendChild(section);

    function shownFile() { return s.files[s.shown]; }
    function size() {
      const p = shownFile().parsed;
      return p ? { rows: p.attributes.Rows || 0, columns: p.attributes.Columns || 0, frames: p.attributes.NumberOfFrames || 1 } : { rows: 0, columns: 0, frames: 1 };
    }
    /** The rectangles that apply to the shown instance, with where they live. */
    function applying() {
      const list = s.rects.map(function (r, k) { return { rect: r, scope: 'series', list: s.rects, index: k }; });
      const own = shownFile().rects;
      return list.concat(own.map(function (r, k) { return { rect: r, scope: 'instance', list: own, index: k }; }));
    }

    function draw(drag) {
      const dims = size();
      const ctx = canvas.getContext('2d');
      if (s.image && typeof s.image !== 'string') ctx.putImageData(s.image, 0, 0);
      else {
        ctx.fillStyle = '#3a4150';
        ctx.fillRect(0, 0, canvas.width, canvas.height);
      }
      // What will be stored: every rectangle (and each rule's) blacked out.
      ctx.fillStyle = '#000';
      applying().forEach(function (a) { ctx.fillRect(a.rect.x, a.rect.y, a.rect.width, a.rect.height); });
      const line = Math.max(1, Math.round(dims.columns / 300));
      ctx.lineWidth = line;
      s.proposals.forEach(function (p) {
        if (p.kind === 'rule') {
          ctx.fillStyle = '#000';
          ctx.fillRect(p.rect.x, p.rect.y, p.rect.width, p.rect.height);
        }
        ctx.setLineDash([4 * line, 3 * line]);
        ctx.strokeStyle = p.kind === 'rule' ? '#e040fb' : '#00e5ff';
        ctx.strokeRect(p.rect.x + line / 2, p.rect.y + line / 2, p.rect.width - line, p.rect.height - line);
      });
      ctx.setLineDash([]);
      if (drag) {
        ctx.strokeStyle = '#ffd400';
        ctx.strokeRect(drag.x, drag.y, drag.width, drag.height);
      }
      canvas.setAttribute('aria-label', 'Frame ' + (s.frame + 1) + ' of ' + shownFile().name + ', ' + applying().length + ' rectangle(s) blacked out; drag to draw a rectangle, or use the form below');
    }

    function renderRects() {
      rectList.textContent = '';
      const all = applying();
      all.forEach(function (a, n) {
        const li = el('li', { 'data-scope': a.scope, 'data-rect': JSON.stringify(a.rect) });
        li.appendChild(el('span', { text: 'Rectangle ' + (n + 1) + ': ' + describe(a.rect) + ' (' + (a.scope === 'series' ? 'whole series' : 'this instance') + ')' }));
        const edit = el('button', { type: 'button', className: 'secondary', 'aria-label': 'Edit rectangle ' + (n + 1), text: 'Edit' });
        const remove = el('button', { type: 'button', className: 'secondary', 'aria-label': 'Remove rectangle ' + (n + 1), text: 'Remove' });
        edit.addEventListener('click', function () {
          s.editing = a;
          scope.value = a.scope;
          ['x', 'y', 'width', 'height'].forEach(function (k) { inputs[k].value = String(a.rect[k]); });
          addButton.textContent = 'Save rectangle';
          stopEdit.hidden = false;
          inputs.x.focus();
        });
        remove.addEventListener('click', function () {
          a.list.splice(a.index, 1);
          s.editing = null;
          resetForm();
          refresh();
          (rectList.querySelector('button') || addButton).focus();
        });
        li.appendChild(edit);
        li.appendChild(remove);
        rectList.appendChild(li);
      });
      if (all.length === 0) rectList.appendChild(el('li', { className: 'empty', text: 'None yet.' }));
    }

    function renderProposals() {
      proposalList.textContent = '';
      s.proposals.forEach(function (p) {
        const li = el('li', { 'data-kind': p.kind, 'data-rect': JSON.stringify(p.rect) });
        const label = p.kind === 'rule' ? 'Rule "' + p.name + '" (the gateway blanks it in any case): ' : 'Text found by OCR: ';
        li.appendChild(el('span', { text: label + describe(p.rect) }));
        const accept = el('button', { type: 'button', text: 'Accept', 'aria-label': 'Accept proposed region ' + describe(p.rect) });
        accept.addEventListener('click', function () {
          s.rects.push(p.rect);
          s.proposals.splice(s.proposals.indexOf(p), 1);
          refresh();
          (proposalList.querySelector('button') || addButton).focus();
        });
        li.appendChild(accept);
        proposalList.appendChild(li);
      });
      if (s.proposals.length === 0) proposalList.appendChild(el('li', { className: 'empty', text: 'None.' }));
    }

    function refresh() {
      renderRects();
      renderProposals();
      draw();
    }

    function resetForm() {
      ['x', 'y', 'width', 'height'].forEach(function (k) { inputs[k].value = ''; });
      addButton.textContent = 'Add rectangle';
      stopEdit.hidden = true;
      formError.textContent = '';
    }

    /** A rectangle from the form, or an error message. */
    function fromForm() {
      const dims = size();
      const r = {};
      const keys = ['x', 'y', 'width', 'height'];
      for (let i = 0; i < keys.length; i++) {
        const v = Number(inputs[keys[i]].value);
        if (inputs[keys[i]].value === '' || !Number.isInteger(v)) return keys[i] + ' must be a whole number';
        r[keys[i]] = v;
      }
      if (r.x < 0 || r.y < 0 || r.width < 1 || r.height < 1) return 'x and y must be 0 or more, width and height 1 or more';
      if (dims.columns && (r.x + r.width > dims.columns || r.y + r.height > dims.rows)) {
        return 'the rectangle must lie inside the image (' + dims.columns + ' × ' + dims.rows + ')';
      }
      return r;
    }

    function add(r, where) {
      if (where === 'series') s.rects.push(r);
      else shownFile().rects.push(r);
      if (s.rects.length > 64 || shownFile().rects.length > 64) {
        (where === 'series' ? s.rects : shownFile().rects).pop();
        formError.textContent = 'At most 64 rectangles per series or instance.';
      }
      refresh();
    }

    addButton.addEventListener('click', function () {
      const r = fromForm();
      if (typeof r === 'string') {
        formError.textContent = r;
        return;
      }
      if (s.editing) {
        s.editing.list.splice(s.editing.index, 1);
        s.editing = null;
      }
      resetForm();
      add(r, scope.value);
    });
    stopEdit.addEventListener('click', function () {
      s.editing = null;
      resetForm();
    });

    // Drawing with the mouse: canvas pixels are image pixels, scaled by the displayed size.
    let start = null;
    function point(e) {
      const box = canvas.getBoundingClientRect();
      const dims = size();
      const x = Math.floor(((e.clientX - box.left) * canvas.width) / box.width);
      const y = Math.floor(((e.clientY - box.top) * canvas.height) / box.height);
      return { x: Math.max(0, Math.min(dims.columns, x)), y: Math.max(0, Math.min(dims.rows, y)) };
    }
    function spanOf(a, b) {
      return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), width: Math.abs(a.x - b.x), height: Math.abs(a.y - b.y) };
    }
    canvas.addEventListener('pointerdown', function (e) {
      if (!size().columns) return;
      start = point(e);
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener('pointermove', function (e) {
      if (start) draw(spanOf(start, point(e)));
    });
    canvas.addEventListener('pointerup', function (e) {
      if (!start) return;
      const r = spanOf(start, point(e));
      start = null;
      if (r.width >= 1 && r.height >= 1) add(r, scope.value);
      else draw();
    });

    function showFrame() {
      const f = shownFile();
      const dims = size();
      if (!f.parsed) {
        s.image = 'cannot be previewed: ' + f.error;
        canvas.width = 1;
        canvas.height = 1;
        note.textContent = s.image;
        refresh();
        return Promise.resolve();
      }
      frameInput.max = String(dims.frames);
      canvas.width = dims.columns || 1;
      canvas.height = dims.rows || 1;
      // A decoder loads and runs asynchronously: only the frame asked for last is shown.
      const ticket = (s.ticket || 0) + 1;
      s.ticket = ticket;
      s.image = null; // never the previous frame under this one's name
      delete section.dataset.shown;
      const shown = s.shown;
      const frame = s.frame;
      return window.DeidDicom.frameImage(f.parsed, frame).then(function (image) {
        if (s.ticket !== ticket) return;
        s.image = image;
        section.dataset.shown = shown + ':' + frame;
        note.textContent = typeof image === 'string'
          ? image + '. Rectangles can still be typed in.'
          : 'Frame ' + (frame + 1) + ' of ' + dims.frames + ' · ' + dims.columns + ' × ' + dims.rows + ' pixels';
        section.dataset.preview = typeof image === 'string' ? 'none' : 'shown';
        refresh();
      });
    }

    function showHeader(preview) {
      headerTable.textContent = '';
      if (!preview) return;
      if (preview.error) {
        headerTable.appendChild(el('caption', { text: 'The gateway cannot review this file: ' + preview.error }));
        return;
      }
      if (preview.withheld) {
        headerTable.appendChild(el('caption', { className: 'refused', text: 'The pixel policy withholds this instance (' + preview.withheld.reason + ', ' + preview.withheld.detail + '): it will not be stored.' }));
      } else if (preview.ocrRedacts) {
        headerTable.appendChild(el('caption', { text: 'OCR redacts this instance (' + preview.ocrRedacts.reason + ', ' + preview.ocrRedacts.detail + '): the gateway blanks the text it finds on sampled frames, besides your rectangles; if OCR fails it will not be stored.' }));
      }
      preview.header.forEach(function (h) {
        headerTable.appendChild(el('tr', {}, [el('th', { scope: 'row', text: h.keyword }), el('td', { text: h.value })]));
      });
    }

    /** Asks the gateway for the shown instance's review (once per file). */
    function loadPreview() {
      const f = shownFile();
      if (f.preview) {
        showHeader(f.preview);
        return Promise.resolve();
      }
      const data = new FormData();
      data.append('file', f.file, f.name);
      section.dataset.proposals = 'loading';
      ocrNote.textContent = 'Asking the gateway for the regions it proposes and the header it will store…';
      return request('upload/preview', data, current.token).then(function (res) {
        if (res.aborted) return;
        f.preview = res.status === 200 && res.body ? res.body : { error: errorText(res) };
        showHeader(f.preview);
        if (!f.preview.error) {
          (f.preview.rules || []).forEach(function (rule) {
            rule.rectangles.forEach(function (r) { s.proposals.push({ kind: 'rule', name: rule.name, rect: r }); });
          });
          if (f.preview.ocr && f.preview.ocr.regions) {
            f.preview.ocr.regions.forEach(function (r) { s.proposals.push({ kind: 'ocr', rect: r }); });
            ocrNote.textContent = 'OCR read frame 1 of ' + f.name + ': ' + f.preview.ocr.regions.length + ' text region(s) proposed.';
          } else if (f.preview.ocr) ocrNote.textContent = 'OCR: ' + f.preview.ocr.unavailable + '.';
        }
        section.dataset.proposals = 'loaded';
        refresh();
      });
    }

    instance.addEventListener('change', function () {
      s.shown = Number(instance.value);
      s.frame = 0;
      frameInput.value = '1';
      showFrame().then(loadPreview);
    });
    showButton.addEventListener('click', function () {
      const k = Number(frameInput.value) - 1;
      if (!Number.isInteger(k) || k < 0 || k >= size().frames) {
        note.textContent = 'Choose a frame from 1 to ' + size().frames + '.';
        return;
      }
      s.frame = k;
      showFrame();
    });
    showFrame().then(loadPreview);
  }

  // --- upload -------------------------------------------------------------------------------------

  function row(name) {
    const tr = document.createElement('tr');
    const file = el('td', { className: 'file', text: name });
    const progress = el('progress', { max: '100', value: '0', 'aria-label': 'Progress of ' + name });
    const result = el('td', { className: 'result', text: 'waiting' });
    tr.appendChild(file);
    tr.appendChild(el('td', {}, [progress]));
    tr.appendChild(result);
    tbody.appendChild(tr);
    return { tr: tr, progress: progress, result: result };
  }

  function show(r, ok, text, uid) {
    r.result.className = 'result ' + (ok ? 'stored' : 'refused');
    r.result.textContent = text;
    r.tr.dataset.outcome = ok ? 'stored' : 'refused';
    if (uid) {
      r.result.appendChild(document.createElement('br'));
      r.result.appendChild(el('code', { text: uid }));
      r.tr.dataset.study = uid;
    }
  }

  function send(entry, token, r) {
    const data = new FormData();
    // The rectangles first: the gateway de-identifies the file as it arrives.
    const redactions = { files: {}, series: {} };
    if (entry.rects.length > 0) redactions.files['0'] = entry.rects;
    if (entry.series.rects.length > 0) {
      if (entry.series.uid) redactions.series[entry.series.uid] = entry.series.rects;
      else redactions.files['0'] = entry.rects.concat(entry.series.rects);
    }
    data.append('redactions', JSON.stringify(redactions));
    data.append('file', entry.file, entry.name);
    return request('upload', data, token, function (p) { r.progress.value = p; }).then(function (res) {
      r.progress.value = 100;
      const item = res.body && res.body.files && res.body.files[0];
      if (res.status === 200 && item && item.outcome === 'stored') {
        show(r, true, 'stored, pseudonymous study', item.studyInstanceUID);
        return true;
      }
      show(r, false, 'refused: ' + (item ? item.reason : res.aborted ? 'cancelled' : errorText(res)));
      // Withheld by the pixel policy (issue 16): the row says so apart from other refusals.
      if (item && item.withheld) r.tr.dataset.withheld = item.withheld.reason;
      return false;
    });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    const token = tokenInput.value.trim();
    const files = Array.prototype.slice.call(filesInput.files).concat(Array.prototype.slice.call(folderInput.files));
    if (!token || files.length === 0) {
      summary.textContent = 'Paste a token and pick files or a folder.';
      return;
    }
    startReview(token, files).then(function () { confirmButton.focus(); });
  });

  confirmButton.addEventListener('click', function () {
    if (!current) return;
    const job = current;
    confirmButton.disabled = true;
    reviewButton.disabled = true;
    table.hidden = false;
    tbody.textContent = '';
    const rows = job.files.map(function (f) { return row(f.name); });
    let stored = 0;
    let i = 0;
    summary.textContent = 'Uploading ' + job.files.length + ' file(s)…';
    (function next() {
      if (job.cancelled) return;
      if (i === job.files.length) {
        summary.textContent = 'Done: ' + stored + ' stored, ' + (job.files.length - stored) + ' refused.';
        document.body.dataset.done = 'true';
        reviewButton.disabled = false;
        review.hidden = true;
        current = null;
        return;
      }
      const k = i++;
      send(job.files[k], job.token, rows[k]).then(function (ok) {
        if (ok) stored++;
        next();
      });
    })();
  });

  cancelButton.addEventListener('click', function () {
    if (current) {
      current.cancelled = true;
      current.requests.forEach(function (xhr) { xhr.abort(); });
    }
    current = null;
    seriesList.textContent = '';
    review.hidden = true;
    filesInput.value = '';
    folderInput.value = '';
    reviewButton.disabled = false;
    summary.textContent = 'Cancelled: nothing more was sent, and the review was discarded.';
    document.body.dataset.cancelled = 'true';
    delete document.body.dataset.review;
    reviewButton.focus();
  });
})();
