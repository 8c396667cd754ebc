import { loadConfig } from './config/load.ts';
import { startGateway } from './server.ts';

/** Composition root: load config, start the gateway, stop cleanly on a signal. */
export async function main(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  const gateway = await startGateway(config);
  const stop = (signal: string) => {
    gateway.logger.info({ signal }, 'stopping');
    void gateway.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
