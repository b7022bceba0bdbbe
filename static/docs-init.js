// /docs: Swagger UI from static/vendor/swagger-ui (npm swagger-ui-dist), started from this file
// rather than an inline script, so the page keeps the app's strict Content-Security-Policy.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
  });
});
