import Link from "next/link";
import { fmtClock, fmtScore, kindLabel, parseTs } from "@/lib/format";
import type { Change, Label, Suspect } from "@/lib/types";
import Bar from "./Bar";
import ChangeDetails from "./ChangeDetails";
import EvidenceBars from "./EvidenceBars";
import LabelButtons from "./LabelButtons";

/** One ranked suspect: what it is, its score, every evidence signal, the explanation, labels. */
export default function SuspectCard({
  suspect,
  change,
  label,
  onset,
  labelled,
}: {
  suspect: Suspect;
  change: Change | undefined;
  label: Label | null;
  onset: string;
  labelled: boolean;
}) {
  const s = suspect;
  const author = change?.author;
  const ts = parseTs(s.ts);
  const onsetTs = parseTs(onset);
  return (
    <li className="suspect panel" data-testid="suspect" data-change={s.change_id ?? ""} id={`suspect-${s.rank}`}>
      <div className="suspect-head">
        <span className="rank" aria-label={`rank ${s.rank}`}>
          #{s.rank}
        </span>
        <span className={`badge kind-${s.kind}`}>{kindLabel(s.kind)}</span>
        {s.change_id ? (
          <Link className="mono" href={`/changes?service=${encodeURIComponent(s.service ?? "")}#change-${s.change_id}`}>
            {s.change_id}
          </Link>
        ) : null}
        {s.service ? (
          <span>
            on <Link href={`/services/${encodeURIComponent(s.service)}`}>{s.service}</Link>
          </span>
        ) : null}
        {ts !== null ? (
          <span className="muted">
            at {fmtClock(ts)} UTC{onsetTs !== null && ts > onsetTs ? " (after the incident's onset)" : ""}
          </span>
        ) : null}
        {author ? <span className="muted">by {author}</span> : null}
        {labelled && label?.verdict === "cause" ? <span className="badge status-resolved">labelled cause</span> : null}
      </div>
      <Bar label="score" value={s.score} tone="score" />
      <p className="explanation">{s.explanation}</p>
      {change ? <ChangeDetails change={change} /> : null}
      {change?.description ? <p className="muted">“{change.description}”</p> : null}
      <details open={s.rank === 1}>
        <summary>Evidence ({Object.keys(s.evidence).length} signals)</summary>
        <EvidenceBars evidence={s.evidence} />
      </details>
      {s.change_id ? (
        <LabelButtons incidentId={s.incident_id} suspectId={s.id} changeId={s.change_id} existing={label} />
      ) : (
        <p className="muted">A root-cause service, not a change: label the change that caused it instead.</p>
      )}
      <p className="sr-only">Score {fmtScore(s.score)}</p>
    </li>
  );
}
