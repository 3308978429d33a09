// A labelled form field with its hint and error. The input comes from the caller (input,
// select, textarea) and gets the ids that tie it to the label and the error.
import type { ComponentChildren, JSX } from "preact";

export interface InputProps {
  id: string;
  name: string;
  "aria-describedby"?: string;
  "aria-invalid"?: boolean;
}

interface FieldProps {
  /** The input's name; also its id, so one form holds it once. */
  name: string;
  label: string;
  hint?: ComponentChildren;
  error?: string | null;
  children: (props: InputProps) => JSX.Element;
  class?: string;
}

export function Field({ name, label, hint, error, children, class: cls }: FieldProps) {
  const id = `f-${name}`;
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div class={`field ${cls ?? ""}`}>
      <label for={id}>{label}</label>
      {children({ id, name, "aria-describedby": described || undefined, "aria-invalid": error ? true : undefined })}
      {hint && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-error`} class="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

/** A form's errors by field name, and one for the form as a whole (`_`). */
export type Errors = Record<string, string>;
