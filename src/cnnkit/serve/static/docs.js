// Renders /openapi.json as a plain page (no CDN, no Swagger bundle).
"use strict";
function el(tag, text, cls) { const e = document.createElement(tag); if (text) e.textContent = text; if (cls) e.className = cls; return e; }
function ref(spec, s) { while (s && s.$ref) s = spec.components.schemas[s.$ref.split("/").pop()]; return s || {}; }
function fields(spec, schema) {
  schema = ref(spec, schema);
  return Object.entries(schema.properties || {}).map(([name, p]) => {
    p = ref(spec, p.anyOf ? p.anyOf.find((x) => x.type !== "null") || p : p);
    const type = p.format === "binary" ? "file" : p.type === "array" ? `array of ${p.items && p.items.format === "binary" ? "files" : (p.items || {}).type}` : (p.enum ? p.enum.join(" | ") : p.type);
    return `${name}${(schema.required || []).includes(name) ? "" : "?"}: ${type}`;
  });
}
fetch("/openapi.json").then((r) => r.json()).then((spec) => {
  document.getElementById("intro").textContent = `${spec.info.title} ${spec.info.version}. ${spec.info.description}`;
  const ops = document.getElementById("ops");
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const sec = el("section");
      sec.appendChild(el("h2", `${method.toUpperCase()} ${path}`));
      if (op.summary) sec.appendChild(el("p", op.summary));
      const params = (op.parameters || []).map((p) => `${p.in} ${p.name}${p.required ? "" : "?"}`);
      const body = op.requestBody && Object.entries(op.requestBody.content)[0];
      if (params.length) sec.appendChild(el("p", "parameters: " + params.join(", ")));
      if (body) sec.appendChild(el("p", `body (${body[0]}): ` + fields(spec, body[1].schema).join(", ")));
      sec.appendChild(el("p", "responses: " + Object.entries(op.responses).map(([s, r]) => `${s} ${r.description}`).join("; ")));
      ops.appendChild(sec);
    }
  }
});
