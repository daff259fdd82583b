import Loading from "@/components/Loading";

export default function IncidentsLoading() {
  return <Loading what="incidents" />;
}
