// Starts Swagger UI on /api/docs (a file, not an inline script: the CSP allows scripts from
// 'self' only). No validator badge: it would call an outside service.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
