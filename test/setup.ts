// Root hooks: every test file runs on the wasm backend, the one users get by default.
import { initBackend } from '../src/runtime/backend';

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    await initBackend(process.env.TDA_BACKEND === 'cpu' ? 'cpu' : 'wasm');
  },
};
