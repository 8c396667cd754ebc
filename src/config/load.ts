import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { configSchema, type GatewayConfig, type SecretRef } from './schema.ts';

const ENV_PREFIX = 'DEID_GATEWAY__';

/** Every key name the schema knows, by its lower-case form, so `FORWARDCALLERTOKEN` finds `forwardCallerToken`. */
const KNOWN_KEYS: ReadonlyMap<string, string> = (() => {
  const names = new Map<string, string>();
  const walk = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const properties = (node as { properties?: Record<string, unknown> }).properties;
    for (const [key, child] of Object.entries(properties ?? {})) {
      names.set(key.toLowerCase(), key);
      walk(child);
    }
    for (const list of ['anyOf', 'oneOf', 'allOf'] as const) {
      for (const child of (node as Record<string, unknown[] | undefined>)[list] ?? []) walk(child);
    }
  };
  walk(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }));
  return names;
})();

/**
 * Environment overrides: `DEID_GATEWAY__UPSTREAM__URL=http://…` sets `upstream.url`. Path segments are
 * matched case-insensitively against the keys already present (so camelCase keys can be written in
 * upper case); values are read as YAML scalars, so `true`, `8080` and `[a, b]` keep their types.
 */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).split('__').filter(Boolean);
    let node: Record<string, unknown> = out;
    path.forEach((segment, i) => {
      const key =
        Object.keys(node).find((k) => k.toLowerCase() === segment.toLowerCase()) ??
        KNOWN_KEYS.get(segment.toLowerCase()) ??
        segment.toLowerCase();
      if (i === path.length - 1) {
        node[key] = parseYaml(value) as unknown;
        return;
      }
      const next = node[key];
      const child = (typeof next === 'object' && next !== null ? next : {}) as Record<string, unknown>;
      node[key] = child;
      node = child;
    });
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a raw config object; every problem is reported at once, each naming its key. */
export function validateConfig(raw: unknown): GatewayConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    );
  }
  return deepFreeze(result.data);
}

/** Reads the YAML (or JSON) file as a plain object, before overrides and validation. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError([`(file): cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (cause) {
    throw new ConfigError([`(file): ${file} is not valid YAML/JSON: ${(cause as Error).message}`]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(['(root): must be a mapping']);
  return raw as Record<string, unknown>;
}

/** Loads the file, applies environment overrides, validates and freezes. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return validateConfig(applyEnvOverrides(readConfigFile(file), env));
}

/**
 * Reads a secret from its file or environment variable. Errors name `key` (where the reference is) and
 * the reference, never the value.
 */
export function readSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env, key = 'secret'): string {
  if (ref.env) {
    const value = env[ref.env];
    if (!value) throw new ConfigError([`${key}: environment variable ${ref.env} is not set`]);
    return value;
  }
  let value: string;
  try {
    value = readFileSync(ref.file as string, 'utf8').trim();
  } catch (cause) {
    throw new ConfigError([`${key}: cannot read file ${ref.file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  if (!value) throw new ConfigError([`${key}: file ${ref.file} is empty`]);
  return value;
}
