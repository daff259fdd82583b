/** Names for the contract's shapes, all generated from the server's OpenAPI document. */
import type { components } from "./api-types";

type S = components["schemas"];
export type Incident = S["IncidentPublic"];
export type Anomaly = S["AnomalyPublic"];
export type Suspect = S["SuspectPublic"];
export type Label = S["LabelPublic"];
export type Change = S["ChangePublic"];
export type Service = S["ServicePublic"];
export type SeriesInfo = S["SeriesInfoPublic"];
export type Series = S["SeriesPublic"];
export type Point = S["PointPublic"];
export type Health = S["HealthPublic"];
export type LabelIn = S["LabelIn"];
export type ErrorBody = S["ErrorPublic"];
export type ChangeKind = Change["kind"];
export type IncidentStatus = Incident["status"];
