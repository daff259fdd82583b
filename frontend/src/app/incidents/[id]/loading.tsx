import Loading from "@/components/Loading";

export default function IncidentLoading() {
  return <Loading what="incident" />;
}
