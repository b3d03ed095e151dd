// eslint's configuration: the web UI's ES modules (browser) and the Node test clients of tests/node.
// Its paths are relative to the repository's root, where `make lint` runs it with
// `--config server/web-vendor/eslint.config.mjs`; it lives here, beside the node_modules holding its packages.
import js from "@eslint/js";
import globals from "globals";

export default [
  // the front-end packages make copies in: not ours to lint
  { ignores: ["server/podium/web/static/vendor/**"] },
  js.configs.recommended,
  {
    files: ["server/podium/web/static/**/*.js"],
    languageOptions: { sourceType: "module", globals: globals.browser },
  },
  {
    files: ["tests/node/**/*.mjs"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
  // a disable comment that no longer silences anything fails too
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
];
