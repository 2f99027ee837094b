// Plugin options (`GET /plugins`): the values a form holds for them, starting from each option's
// default, and the request field name a refusal of one would use.
import type { Plugin, PluginOption } from "./api";

export type OptionValue = string | number | boolean | null;

/** The field an option's errors are reported under (Lemur's `plugin.pluginOptions`). */
export function optionField(option: PluginOption): string {
  return `plugin.pluginOptions.${option.name}`;
}

/** Each option's starting value: its default, else empty (unchecked for a flag). */
export function initialValues(plugin: Plugin): Record<string, OptionValue> {
  return Object.fromEntries(
    plugin.pluginOptions.map((option) => {
      const fallback = option.type === "bool" ? false : option.type === "int" ? null : "";
      const given = option.default;
      const value =
        typeof given === "string" || typeof given === "number" || typeof given === "boolean"
          ? given
          : fallback;
      return [option.name, value];
    }),
  );
}
