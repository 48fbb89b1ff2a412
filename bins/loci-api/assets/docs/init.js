// Renders /openapi.json as a browsable list of operations. Plain DOM, no
// third-party code, so it runs under the server's strict CSP and offline.
(function () {
  "use strict";
  var app = document.getElementById("app");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function resolve(doc, schema) {
    if (schema && schema.$ref) {
      var name = schema.$ref.split("/").pop();
      return { name: name, schema: (doc.components.schemas || {})[name] };
    }
    return { name: null, schema: schema };
  }

  function schemaBlock(doc, schema) {
    var r = resolve(doc, schema);
    var text = (r.name ? r.name + " = " : "") + JSON.stringify(r.schema, null, 2);
    return el("pre", {}, [text]);
  }

  function operation(doc, path, method, op) {
    var body = el("div", { class: "body" }, []);
    if (op.description) body.appendChild(el("p", {}, [op.description]));
    if (op.parameters && op.parameters.length) {
      var rows = op.parameters.map(function (p) {
        return el("tr", {}, [el("td", {}, [p.name]), el("td", {}, [p["in"]]),
          el("td", {}, [JSON.stringify(p.schema || {})]), el("td", {}, [p.description || ""])]);
      });
      body.appendChild(el("h4", {}, ["Parameters"]));
      body.appendChild(el("table", {}, rows));
    }
    if (op.requestBody) {
      var content = op.requestBody.content || {};
      Object.keys(content).forEach(function (type) {
        body.appendChild(el("h4", {}, ["Request body (" + type + ")"]));
        body.appendChild(schemaBlock(doc, content[type].schema));
      });
    }
    body.appendChild(el("h4", {}, ["Responses"]));
    Object.keys(op.responses || {}).forEach(function (status) {
      var res = op.responses[status];
      body.appendChild(el("p", {}, [el("strong", {}, [status]), " " + (res.description || "")]));
      var content = res.content || {};
      Object.keys(content).slice(0, 1).forEach(function (type) {
        if (status < "400") body.appendChild(schemaBlock(doc, content[type].schema));
      });
    });
    var scopes = (op.security || []).length ? " 🔒" : "";
    return el("details", {}, [
      el("summary", {}, [el("span", { class: "m " + method }, [method.toUpperCase()]), path + scopes]),
      body,
    ]);
  }

  fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (doc) {
    app.textContent = "";
    app.appendChild(el("h1", {}, [doc.info.title + " " + doc.info.version]));
    app.appendChild(el("p", {}, [doc.info.description || ""]));
    var byTag = {};
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (method) {
        var op = doc.paths[path][method];
        var tag = (op.tags || ["other"])[0];
        (byTag[tag] = byTag[tag] || []).push(operation(doc, path, method, op));
      });
    });
    Object.keys(byTag).forEach(function (tag) {
      app.appendChild(el("h2", {}, [tag]));
      byTag[tag].forEach(function (node) { app.appendChild(node); });
    });
  }).catch(function (e) {
    app.textContent = "Could not load /openapi.json: " + e;
  });
})();
