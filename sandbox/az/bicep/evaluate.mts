/**
 * The az stand-in's Bicep subset compiler: what `az deployment group create --template-file
 * x.bicep` runs locally instead of `bicep build` (the Bicep binary does not exist on this
 * machine). The ARM template it produces goes to ARM, whose template engine
 * (sandbox/services/arm/template/engine.mts) validates and deploys it, as in Azure.
 *
 * It understands the Bicep this project's templates are written in, and a little more:
 * `targetScope`, `param` (string int bool object array, with @description @allowed
 * @minLength @maxLength @minValue @maxValue @secure @metadata), `var`, `resource` (with
 * `existing`, `parent`, `scope`, `dependsOn`, nested child `resource` declarations), `output`,
 * `metadata`; expressions with strings ('', interpolation, escapes, '''), ints, bools, null,
 * objects, arrays, member and index access (also the safe `.?` / `[?i]`), function calls
 * (environment() among them), `? :`, `??`, `||`, `&&`, `== != =~ !~`, `< <= > >=`,
 * `+ - * / %`, `!` and unary `-`. Resource loops `[for x in xs: {...}]` /
 * `[for (x, i) in xs: {...}]` become ARM copy loops. `module m './x.bicep' = {name, params,
 * dependsOn}` (a relative path to a .bicep file, same resource group) becomes a nested deployment
 * with the module's compiled template inline, as `bicep build` writes it.
 * Everything else (registry modules, module scopes or loops, other loops, conditions, lambdas, user types, imports, ...) is refused
 * with the file, line and column: never silently ignored.
 *
 * This file is the entry: parseBicep() runs lexer.mts, parser.mts and checks.mts; compileBicep()
 * (compile.mts) turns the result into ARM JSON. Types are in types.mts, errors in errors.mts.
 *
 * @example
 * const template = compileBicep(parseBicep(source, "main.bicep"));
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { checkTemplate } from "./checks.mts";
import { BicepSyntaxError } from "./errors.mts";
import { Lexer } from "./lexer.mts";
import { Parser } from "./parser.mts";
import type { BicepTemplate } from "./types.mts";

export { compileBicep } from "./compile.mts";

/**
 * Parse a Bicep file into its declarations; throws BicepSyntaxError (with file:line:column) on
 * anything outside the subset. Modules are read from disk relative to `fileName` and parsed too.
 */
export function parseBicep(source: string, fileName: string, _including: string[] = []): BicepTemplate {
  const tokens = new Lexer(source, fileName).tokenize();
  const tpl = new Parser(tokens, fileName).parseProgram();
  for (const r of tpl.resources) {
    if (!r.module) continue;
    const path = resolve(dirname(fileName), r.module.path);
    if (path === resolve(fileName) || _including.includes(path)) throw new BicepSyntaxError(fileName, r.module.pos, `The module '${r.module.path}' includes itself (a module cycle).`);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      throw new BicepSyntaxError(fileName, r.module.pos, `An error occurred reading file. Could not find file '${path}'.`);
    }
    r.module.template = parseBicep(text, path, [..._including, resolve(fileName)]);
  }
  checkTemplate(tpl);
  return tpl;
}
