// A module-resolution hook for the hook tests: the served module
// realtime/static/realtime/dexter-realtime-react.js imports the bare specifier
// `react` (a peer dependency), which node would look for beside the module. Point
// it, and react-dom's own import, at the one copy in tests/js/node_modules so the
// hooks and the renderer share a single React.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const REACT = pathToFileURL(require.resolve('react')).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'react') return { url: REACT, shortCircuit: true };
  return nextResolve(specifier, context);
}
