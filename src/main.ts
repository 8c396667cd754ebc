import { loadResolvedConfig } from './config/resolve.ts';
import { startGateway } from './server.ts';

/** Composition root: load and resolve the config (every problem at once), start the gateway, stop cleanly on a signal. */
export async function main(configFile: string): Promise<void> {
  const config = loadResolvedConfig(configFile);
  const gateway = await startGateway(config);
  const stop = (signal: string) => {
    gateway.logger.info({ signal }, 'stopping');
    void gateway.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
